/*
 * tls.h: TLS for both programs, on OpenSSL.  The only file that includes
 * OpenSSL headers.  A started TLS layer replaces the read, write and
 * pending functions of a struct pio, so readers and writers above it do
 * not change.
 */
#ifndef TLS_H
#define TLS_H

#include "proto.h"

struct tls_ctx;

/* Server context from a PEM certificate chain and key; NULL after printing
 * the reason to errbuf. TLS 1.2 or newer. */
struct tls_ctx *tls_server_new(const char *cert, const char *key,
	    char *errbuf, size_t errlen);

/* Client context: verify against cafile, else the system trust store;
 * insecure skips verification.  NULL with the reason in errbuf. */
struct tls_ctx *tls_client_new(const char *cafile, int insecure,
	    char *errbuf, size_t errlen);

/* Free a context made by tls_server_new or tls_client_new; NULL is fine. */
void	tls_free(struct tls_ctx *ctx);

/*
 * Run the handshake on io's fds, waiting up to timeout_ms for the peer,
 * then switch io to TLS.  host (client only) is the name to verify and to
 * send in SNI.  0 on success, -1 with the reason in errbuf.
 */
int	tls_accept(struct tls_ctx *ctx, struct pio *io, int timeout_ms,
	    char *errbuf, size_t errlen);
int	tls_connect(struct tls_ctx *ctx, struct pio *io, const char *host,
	    int timeout_ms, char *errbuf, size_t errlen);

/* Protocol and cipher of a started layer, for logs ("TLSv1.3 ..."). */
const char *tls_describe(struct pio *io);

/* For a client's "tls" command: lines "protocol:", "cipher:", "subject:",
 * "issuer:", "valid:", "sha256:" about a started layer and the peer's
 * certificate.  0, or -1 when io has no TLS layer. */
int	tls_peer_info(struct pio *io, char *buf, size_t len);

/* Send close_notify (best effort) and free the layer of io. */
void	tls_end(struct pio *io);

#endif
