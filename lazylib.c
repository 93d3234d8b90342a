/*
 * lazylib.c: libraries that not every run of pop3d uses, loaded on first
 * use instead of at every start.
 *
 * A stdio session (systemd's Accept=yes with StandardInput=socket, xinetd,
 * inetd) is one exec per connection, and the dynamic loader maps and
 * relocates every library pop3d links before main() runs.  Two of them
 * serve few runs:
 *
 * - libsystemd, which brings six more (libcap, libgcrypt, libgpg-error,
 *   liblzma, liblz4, libzstd), for the four calls listen.c makes; a stdio
 *   session makes none of them: systemd passes it no listening socket and
 *   asks it for no notification.  The definitions below dlopen it the
 *   first time systemd's environment says a call has work to do
 *   ($LISTEN_FDS, $NOTIFY_SOCKET), and pass every call on unchanged;
 *   without that variable the library's documented answer is 0, nothing
 *   done, and that is what is returned.
 * - OpenSSL (libssl and libcrypto), for TLS only: its functions that
 *   tls.c calls are defined below, each loading the library at the first
 *   call and passing the call on.  The first is made when pop3d is
 *   started with a certificate (tls_server_new), before any session.
 *
 * Both load only in the process pop3d starts as, before any session:
 * workers inherit the mappings, and no confined process ever loads code.
 * pop3c links OpenSSL as usual.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sysexits.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "log.h"
#include "params.h"

#define STR_(x)		#x
#define STR(x)		STR_(x)
/* The soname of the libssl pop3d was built with: "libssl.so.3". */
#define LIBSSL		"libssl.so." STR(OPENSSL_SHLIB_VERSION)

/*
 * Every OpenSSL function tls.c calls, with its prototype: F(return type,
 * name, parameters, arguments), V(...) for those returning nothing.  The
 * compiler checks each against OpenSSL's own declaration.
 */
#define SSL_FUNCS(F, V) \
	F(int, ASN1_TIME_print, (BIO *a, const ASN1_TIME *b), (a, b)) \
	F(int, BIO_free, (BIO *a), (a)) \
	F(BIO *, BIO_new, (const BIO_METHOD *a), (a)) \
	F(int, BIO_read, (BIO *a, void *b, int c), (a, b, c)) \
	F(const BIO_METHOD *, BIO_s_mem, (void), ()) \
	V(ERR_clear_error, (void), ()) \
	V(ERR_error_string_n, (unsigned long a, char *b, size_t c), (a, b, c)) \
	F(unsigned long, ERR_get_error, (void), ()) \
	F(const EVP_MD *, EVP_sha256, (void), ()) \
	F(const char *, SSL_CIPHER_get_name, (const SSL_CIPHER *a), (a)) \
	F(int, SSL_CTX_check_private_key, (const SSL_CTX *a), (a)) \
	F(long, SSL_CTX_ctrl, (SSL_CTX *a, int b, long c, void *d), \
	    (a, b, c, d)) \
	V(SSL_CTX_free, (SSL_CTX *a), (a)) \
	F(int, SSL_CTX_load_verify_locations, (SSL_CTX *a, const char *b, \
	    const char *c), (a, b, c)) \
	F(SSL_CTX *, SSL_CTX_new, (const SSL_METHOD *a), (a)) \
	F(int, SSL_CTX_set_default_verify_paths, (SSL_CTX *a), (a)) \
	F(uint64_t, SSL_CTX_set_options, (SSL_CTX *a, uint64_t b), (a, b)) \
	V(SSL_CTX_set_verify, (SSL_CTX *a, int b, SSL_verify_cb c), \
	    (a, b, c)) \
	F(int, SSL_CTX_use_PrivateKey_file, (SSL_CTX *a, const char *b, \
	    int c), (a, b, c)) \
	F(int, SSL_CTX_use_certificate_chain_file, (SSL_CTX *a, \
	    const char *b), (a, b)) \
	F(int, SSL_accept, (SSL *a), (a)) \
	F(int, SSL_connect, (SSL *a), (a)) \
	F(long, SSL_ctrl, (SSL *a, int b, long c, void *d), (a, b, c, d)) \
	V(SSL_free, (SSL *a), (a)) \
	F(X509_VERIFY_PARAM *, SSL_get0_param, (SSL *a), (a)) \
	F(X509 *, SSL_get1_peer_certificate, (const SSL *a), (a)) \
	F(const SSL_CIPHER *, SSL_get_current_cipher, (const SSL *a), (a)) \
	F(int, SSL_get_error, (const SSL *a, int b), (a, b)) \
	F(long, SSL_get_verify_result, (const SSL *a), (a)) \
	F(const char *, SSL_get_version, (const SSL *a), (a)) \
	F(SSL *, SSL_new, (SSL_CTX *a), (a)) \
	F(int, SSL_pending, (const SSL *a), (a)) \
	F(int, SSL_read, (SSL *a, void *b, int c), (a, b, c)) \
	F(int, SSL_set_rfd, (SSL *a, int b), (a, b)) \
	F(int, SSL_set_wfd, (SSL *a, int b), (a, b)) \
	F(int, SSL_shutdown, (SSL *a), (a)) \
	F(int, SSL_write, (SSL *a, const void *b, int c), (a, b, c)) \
	F(const SSL_METHOD *, TLS_client_method, (void), ()) \
	F(const SSL_METHOD *, TLS_server_method, (void), ()) \
	F(int, X509_NAME_print_ex, (BIO *a, const X509_NAME *b, int c, \
	    unsigned long d), (a, b, c, d)) \
	F(int, X509_VERIFY_PARAM_set1_host, (X509_VERIFY_PARAM *a, \
	    const char *b, size_t c), (a, b, c)) \
	F(int, X509_VERIFY_PARAM_set1_ip_asc, (X509_VERIFY_PARAM *a, \
	    const char *b), (a, b)) \
	F(int, X509_digest, (const X509 *a, const EVP_MD *b, \
	    unsigned char *c, unsigned int *d), (a, b, c, d)) \
	V(X509_free, (X509 *a), (a)) \
	F(const ASN1_TIME *, X509_get0_notAfter, (const X509 *a), (a)) \
	F(const ASN1_TIME *, X509_get0_notBefore, (const X509 *a), (a)) \
	F(X509_NAME *, X509_get_issuer_name, (const X509 *a), (a)) \
	F(X509_NAME *, X509_get_subject_name, (const X509 *a), (a)) \
	F(const char *, X509_verify_cert_error_string, (long a), (a))

/* The real functions. */
#define PTR(ret, name, params, args)	static ret (*p_##name) params;
#define PTRV(name, params, args)	static void (*p_##name) params;
SSL_FUNCS(PTR, PTRV)

/* Load libssl (and with it libcrypto) and find every function, or exit:
 * TLS was asked for and cannot be given. */
static void
ssl_load(void)
{
	static int loaded;
	void *h;

	if (loaded)
		return;
	if ((h = dlopen(LIBSSL, RTLD_NOW | RTLD_LOCAL)) == NULL)
		log_fatalx(EX_UNAVAILABLE, "cannot load %s: %s", LIBSSL,
		    dlerror());
#define SYM(ret, name, params, args) \
	if ((*(void **)&p_##name = dlsym(h, #name)) == NULL) \
		log_fatalx(EX_UNAVAILABLE, "%s: no %s", LIBSSL, #name);
#define SYMV(name, params, args)	SYM(void, name, params, args)
	SSL_FUNCS(SYM, SYMV)
	loaded = 1;
}

#define FWD(ret, name, params, args) \
	ret name params { ssl_load(); return p_##name args; }
#define FWDV(name, params, args) \
	void name params { ssl_load(); p_##name args; }
SSL_FUNCS(FWD, FWDV)

#ifdef USE_SYSTEMD
#include <systemd/sd-daemon.h>

#define LIBSYSTEMD	"libsystemd.so.0"	/* its soname since 2014 */

/* The real functions, found once. */
static struct {
	int	 tried;
	int	(*listen_fds)(int);
	int	(*is_socket)(int, int, int, int);
	int	(*notify)(int, const char *);
} sd;

/* 0 with sd's pointers set, or -1 (logged once). */
static int
sd_load(void)
{
	void *h;

	if (!sd.tried) {
		sd.tried = 1;
		if ((h = dlopen(LIBSYSTEMD, RTLD_NOW | RTLD_LOCAL)) == NULL ||
		    (*(void **)&sd.listen_fds = dlsym(h, "sd_listen_fds")) ==
		    NULL ||
		    (*(void **)&sd.is_socket = dlsym(h, "sd_is_socket")) ==
		    NULL ||
		    (*(void **)&sd.notify = dlsym(h, "sd_notify")) == NULL) {
			log_warnx("cannot load %s: %s", LIBSYSTEMD, dlerror());
			sd.listen_fds = NULL;
		}
	}
	return sd.listen_fds != NULL ? 0 : -1;
}

int
sd_listen_fds(int unset_environment)
{
	if (getenv("LISTEN_FDS") == NULL)
		return 0;
	if (sd_load() < 0)
		return -ENOSYS;
	return sd.listen_fds(unset_environment);
}

int
sd_is_socket(int fd, int family, int type, int listening)
{
	if (sd_load() < 0)
		return -ENOSYS;
	return sd.is_socket(fd, family, type, listening);
}

int
sd_notify(int unset_environment, const char *state)
{
	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	if (sd_load() < 0)
		return -ENOSYS;
	return sd.notify(unset_environment, state);
}

int
sd_notifyf(int unset_environment, const char *format, ...)
{
	char buf[SD_NOTIFY_MAX];
	va_list ap;
	int k;

	va_start(ap, format);
	k = vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof(buf))
		return -EINVAL;
	return sd_notify(unset_environment, buf);
}
#endif
