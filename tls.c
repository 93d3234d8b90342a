/*
 * tls.c: OpenSSL behind the small interface of tls.h.  Used by the session
 * code of pop3d (STLS and --tls) and by pop3c (--starttls and --tls).
 */
#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"

struct tls_ctx {
	SSL_CTX	*ctx;
	int	 client;
	int	 insecure;
};

static void
ssl_error(char *buf, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	char reason[256];

	if (e == 0) {
		snprintf(buf, len, "%s failed", what);
		return;
	}
	ERR_error_string_n(e, reason, sizeof(reason));
	snprintf(buf, len, "%s: %s", what, reason);
	ERR_clear_error();
}

static struct tls_ctx *
ctx_new(int client, char *errbuf, size_t errlen)
{
	struct tls_ctx *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return NULL;
	}
	t->client = client;
	t->ctx = SSL_CTX_new(client ? TLS_client_method() : TLS_server_method());
	if (t->ctx == NULL) {
		ssl_error(errbuf, errlen, "SSL_CTX_new");
		free(t);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	/* A renegotiation costs the server a handshake on the client's
	 * whim: refuse it (TLS 1.2 and older; 1.3 has none). */
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION);
#ifdef SSL_OP_CLEANSE_PLAINTEXT
	/* Decrypted records (a password) are wiped once read out. */
	SSL_CTX_set_options(t->ctx, SSL_OP_CLEANSE_PLAINTEXT);
#endif
	return t;
}

struct tls_ctx *
tls_server_new(const char *cert, const char *key, char *errbuf, size_t errlen)
{
	struct tls_ctx *t = ctx_new(0, errbuf, errlen);

	if (t == NULL)
		return NULL;
	if (SSL_CTX_use_certificate_chain_file(t->ctx, cert) != 1) {
		ssl_error(errbuf, errlen, cert);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1) {
		ssl_error(errbuf, errlen, key);
		goto fail;
	}
	if (SSL_CTX_check_private_key(t->ctx) != 1) {
		ssl_error(errbuf, errlen, "key does not match certificate");
		goto fail;
	}
	return t;
fail:
	SSL_CTX_free(t->ctx);
	free(t);
	return NULL;
}

struct tls_ctx *
tls_client_new(const char *cafile, int insecure, char *errbuf, size_t errlen)
{
	struct tls_ctx *t = ctx_new(1, errbuf, errlen);

	if (t == NULL)
		return NULL;
	t->insecure = insecure;
	if (!insecure) {
		int r = cafile != NULL ?
		    SSL_CTX_load_verify_locations(t->ctx, cafile, NULL) :
		    SSL_CTX_set_default_verify_paths(t->ctx);

		if (r != 1) {
			ssl_error(errbuf, errlen, cafile ? cafile : "trust store");
			SSL_CTX_free(t->ctx);
			free(t);
			return NULL;
		}
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	}
	return t;
}

void
tls_free(struct tls_ctx *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->ctx);
	free(t);
}

/* pio functions of a started layer: errors come back as errno, and with
 * EAGAIN what to wait for in p->want (a read may need to write first). */
static ssize_t
map_result(struct pio *p, int r)
{
	SSL *ssl = p->ctx;

	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
		p->want = POLLIN;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_WANT_WRITE:
		p->want = POLLOUT;
		errno = EAGAIN;
		return -1;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		ERR_clear_error();
		if (errno == 0)
			return 0;	/* peer closed without close_notify */
		return -1;
	default:
		ERR_clear_error();
		errno = EPROTO;
		return -1;
	}
}

static ssize_t
tls_read(struct pio *p, void *buf, size_t n)
{
	int r;

	errno = 0;
	if ((r = SSL_read(p->ctx, buf, n > INT32_MAX ? INT32_MAX : (int)n)) > 0)
		return r;
	return map_result(p, r);
}

static ssize_t
tls_write(struct pio *p, const void *buf, size_t n)
{
	int r;

	errno = 0;
	if ((r = SSL_write(p->ctx, buf, n > INT32_MAX ? INT32_MAX : (int)n)) > 0)
		return r;
	return map_result(p, r);
}

static size_t
tls_pending(struct pio *p)
{
	return SSL_pending(p->ctx);
}

static int
handshake(struct tls_ctx *t, struct pio *io, const char *host, int timeout_ms,
    char *errbuf, size_t errlen)
{
	long long deadline = timeout_ms < 0 ? -1 : proto_now_ms() + timeout_ms;
	SSL *ssl;
	int r;

	if ((ssl = SSL_new(t->ctx)) == NULL) {
		ssl_error(errbuf, errlen, "SSL_new");
		return -1;
	}
	SSL_set_rfd(ssl, io->rfd);
	SSL_set_wfd(ssl, io->wfd);
	if (t->client) {
		unsigned char addr[16];
		int is_ip = inet_pton(AF_INET, host, addr) == 1 ||
		    inet_pton(AF_INET6, host, addr) == 1;

		if (!is_ip)
			SSL_set_tlsext_host_name(ssl, host);
		if (!t->insecure) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

			if (is_ip)
				X509_VERIFY_PARAM_set1_ip_asc(vp, host);
			else
				X509_VERIFY_PARAM_set1_host(vp, host, 0);
		}
	}
	for (;;) {
		struct pollfd pfd;
		int err, left = -1;

		ERR_clear_error();
		r = t->client ? SSL_connect(ssl) : SSL_accept(ssl);
		if (r == 1)
			break;
		err = SSL_get_error(ssl, r);
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
			pfd.fd = err == SSL_ERROR_WANT_READ ? io->rfd : io->wfd;
			pfd.events = err == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
			if (deadline >= 0) {
				long long l = deadline - proto_now_ms();

				left = l > 0 ? (int)l : 0;
			}
			r = poll(&pfd, 1, left);
			if (r > 0 || (r < 0 && errno == EINTR))
				continue;
			snprintf(errbuf, errlen, "TLS handshake timed out");
			SSL_free(ssl);
			return -1;
		}
		if (t->client && SSL_get_verify_result(ssl) != X509_V_OK)
			snprintf(errbuf, errlen, "certificate verify failed: %s",
			    X509_verify_cert_error_string(
			    SSL_get_verify_result(ssl)));
		else
			ssl_error(errbuf, errlen, "TLS handshake");
		SSL_free(ssl);
		return -1;
	}
	io->ctx = ssl;
	io->read = tls_read;
	io->write = tls_write;
	io->pending = tls_pending;
	return 0;
}

int
tls_accept(struct tls_ctx *ctx, struct pio *io, int timeout_ms, char *errbuf,
    size_t errlen)
{
	return handshake(ctx, io, NULL, timeout_ms, errbuf, errlen);
}

int
tls_connect(struct tls_ctx *ctx, struct pio *io, const char *host,
    int timeout_ms, char *errbuf, size_t errlen)
{
	return handshake(ctx, io, host, timeout_ms, errbuf, errlen);
}

const char *
tls_describe(struct pio *io)
{
	if (io->ctx == NULL)
		return "plain";
	return SSL_get_version(io->ctx);
}

void
tls_end(struct pio *io)
{
	if (io->ctx == NULL)
		return;
	SSL_shutdown(io->ctx);
	SSL_free(io->ctx);
	io->ctx = NULL;
	pio_init_fd(io, io->rfd, io->wfd);
}

/* One X509 name as a one-line string into buf. */
static void
name_line(X509_NAME *name, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	buf[0] = '\0';
	if (b == NULL)
		return;
	if (name != NULL && X509_NAME_print_ex(b, name, 0,
	    XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (n = BIO_read(b, buf, len - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
}

static void
time_line(const ASN1_TIME *t, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n;

	buf[0] = '\0';
	if (b == NULL)
		return;
	if (t != NULL && ASN1_TIME_print(b, t) && (n = BIO_read(b, buf,
	    len - 1)) > 0)
		buf[n] = '\0';
	BIO_free(b);
}

int
tls_peer_info(struct pio *io, char *buf, size_t len)
{
	char subject[512], issuer[512], from[64], until[64], fp[3 * 32 + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	X509 *cert;

	if (io->ctx == NULL)
		return -1;
	subject[0] = issuer[0] = from[0] = until[0] = fp[0] = '\0';
	cert = SSL_get1_peer_certificate(io->ctx);
	if (cert != NULL) {
		name_line(X509_get_subject_name(cert), subject, sizeof(subject));
		name_line(X509_get_issuer_name(cert), issuer, sizeof(issuer));
		time_line(X509_get0_notBefore(cert), from, sizeof(from));
		time_line(X509_get0_notAfter(cert), until, sizeof(until));
		if (X509_digest(cert, EVP_sha256(), md, &mdlen) == 1)
			for (i = 0; i < mdlen && i < 32; i++)
				snprintf(fp + 3 * i, sizeof(fp) - 3 * i, "%02X%s",
				    md[i], i + 1 < mdlen ? ":" : "");
		X509_free(cert);
	}
	snprintf(buf, len, "protocol: %s\ncipher:   %s\nsubject:  %s\n"
	    "issuer:   %s\nvalid:    %s to %s\nsha256:   %s\n",
	    SSL_get_version(io->ctx), SSL_get_cipher_name(io->ctx),
	    cert ? subject : "(no certificate)", issuer, from, until, fp);
	return 0;
}
