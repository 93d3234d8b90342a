# pop3d and pop3c.  Plain make: all (default), check, fuzz, bench, run,
# install, uninstall, clean.  CFLAGS, CPPFLAGS and LDFLAGS are the user's to set.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
USE_SYSTEMD ?= yes
PKG_CONFIG ?= pkg-config

SYSTEMDUNITDIR ?= $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null)
ifeq ($(SYSTEMDUNITDIR),)
SYSTEMDUNITDIR = $(PREFIX)/lib/systemd/system
endif
# Installed disabled: copying it to /etc/xinetd.d enables it (README).
XINETDDIR ?= $(PREFIX)/share/pop3d/xinetd.d
# Examples for nginx's mail proxy and HAProxy (README: More than one machine).
PROXYDIR ?= $(PREFIX)/share/pop3d/proxy
PROXYCONF = proxy/nginx-pop3.conf proxy/haproxy-pop3.cfg
UNITS = systemd/pop3d.socket systemd/pop3d@.service \
	systemd/pop3d-listener.socket systemd/pop3d-listener.service \
	systemd/pop3s.socket systemd/pop3s@.service

# Object/output folder; the sanitizer build uses O=san.
O ?= .

CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Wformat=2 -Wshadow -Wpointer-arith -Wstrict-prototypes
ALL_CPPFLAGS = -D_GNU_SOURCE $(CPPFLAGS)
ALL_CFLAGS = $(WARN) $(CFLAGS)

# pop3d links neither libsystemd nor OpenSSL: lazylib.c loads them when
# used (systemd's sockets or notifications; a certificate), so a stdio
# session's exec maps neither.
ifeq ($(USE_SYSTEMD),yes)
SYSTEMD_CFLAGS := $(shell $(PKG_CONFIG) --cflags libsystemd 2>/dev/null)
ALL_CPPFLAGS += -DUSE_SYSTEMD $(SYSTEMD_CFLAGS)
endif
READLINE_CFLAGS := $(shell $(PKG_CONFIG) --cflags readline 2>/dev/null)
READLINE_LIBS := $(shell $(PKG_CONFIG) --libs readline 2>/dev/null || echo -lreadline)
SSL_CFLAGS := $(shell $(PKG_CONFIG) --cflags openssl 2>/dev/null)
SSL_LIBS := $(shell $(PKG_CONFIG) --libs openssl 2>/dev/null || echo -lssl -lcrypto)
CRYPT_LIBS := $(shell $(PKG_CONFIG) --libs libxcrypt 2>/dev/null || echo -lcrypt)
SECCOMP_LIBS := $(shell $(PKG_CONFIG) --libs libseccomp 2>/dev/null || echo -lseccomp)
ALL_CPPFLAGS += $(SSL_CFLAGS)

POP3D_OBJS = pop3d.o listen.o login.o source.o proxy.o session.o auth.o store.o maildir.o index.o users.o sandbox.o tls.o proto.o log.o lazylib.o
POP3C_OBJS = pop3c.o client.o tls.o proto.o
TEST_BINS = tests/test_proto tests/test_store tests/test_client tests/test_proxy tests/test_maildir

SAN_FLAGS = -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

# libFuzzer harnesses (tests/fuzz/README.md), built with clang into
# fuzz-build/ and run FUZZ_SECONDS each by `make fuzz`.
FUZZ_CC ?= clang
FUZZ_O = fuzz-build
FUZZ_SECONDS ?= 60
FUZZERS = reader dotstuff users session reply proxy
FUZZ_FLAGS = -O1 -g -fno-omit-frame-pointer \
	-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
FUZZ_LINK = -fsanitize=fuzzer,address,undefined
FUZZ_BINS = $(addprefix $(O)/tests/fuzz/fuzz_,$(FUZZERS))

all: $(O)/pop3d $(O)/pop3c

$(O)/pop3d: $(addprefix $(O)/,$(POP3D_OBJS))
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(CRYPT_LIBS) \
	    $(SECCOMP_LIBS)

$(O)/pop3c: $(addprefix $(O)/,$(POP3C_OBJS))
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(READLINE_LIBS) $(SSL_LIBS)

$(O)/pop3c.o: pop3c.c client.h proto.h params.h
	@mkdir -p $(O)
	$(CC) $(ALL_CPPFLAGS) $(READLINE_CFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(O)/%.o: %.c *.h
	@mkdir -p $(O)
	$(CC) $(ALL_CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(O)/tests/test_proto: tests/test_proto.c $(O)/proto.o tests/tap.h
	@mkdir -p $(O)/tests
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/proto.o

$(O)/tests/test_store: tests/test_store.c $(O)/store.o $(O)/maildir.o $(O)/index.o $(O)/proto.o $(O)/log.o tests/tap.h
	@mkdir -p $(O)/tests
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/store.o $(O)/maildir.o $(O)/index.o $(O)/proto.o $(O)/log.o

$(O)/tests/test_maildir: tests/test_maildir.c $(O)/maildir.o $(O)/log.o tests/tap.h
	@mkdir -p $(O)/tests
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/maildir.o $(O)/log.o

$(O)/tests/test_client: tests/test_client.c $(O)/client.o $(O)/tls.o $(O)/proto.o tests/tap.h
	@mkdir -p $(O)/tests
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/client.o $(O)/tls.o $(O)/proto.o $(SSL_LIBS)

$(O)/tests/test_proxy: tests/test_proxy.c $(O)/proxy.o tests/tap.h
	@mkdir -p $(O)/tests
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $< $(O)/proxy.o

tests: $(addprefix $(O)/,$(TEST_BINS))

# Harnesses: each links the objects it needs (built with the same flags).
$(O)/tests/fuzz/fuzz_reader: tests/fuzz/fuzz_reader.c $(O)/proto.o
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^

$(O)/tests/fuzz/fuzz_dotstuff: tests/fuzz/fuzz_dotstuff.c $(O)/proto.o
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^

$(O)/tests/fuzz/fuzz_users: tests/fuzz/fuzz_users.c \
    $(addprefix $(O)/,$(filter-out pop3d.o,$(POP3D_OBJS)))
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ \
		$(CRYPT_LIBS) $(SECCOMP_LIBS)

$(O)/tests/fuzz/fuzz_session: tests/fuzz/fuzz_session.c \
    $(addprefix $(O)/,$(filter-out pop3d.o,$(POP3D_OBJS)))
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ \
		$(CRYPT_LIBS) $(SECCOMP_LIBS)

$(O)/tests/fuzz/fuzz_reply: tests/fuzz/fuzz_reply.c \
    $(addprefix $(O)/,$(filter-out pop3c.o,$(POP3C_OBJS)))
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(SSL_LIBS)

$(O)/tests/fuzz/fuzz_proxy: tests/fuzz/fuzz_proxy.c $(O)/proxy.o
	@mkdir -p $(@D)
	$(CC) $(ALL_CPPFLAGS) -I. $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^

fuzzers: $(FUZZ_BINS)

# Build the harnesses (check builds them too, so a change of an interface
# they use shows at once); `make fuzz` runs each for FUZZ_SECONDS.
fuzz-bins:
	$(MAKE) O=$(FUZZ_O) CC=$(FUZZ_CC) CFLAGS="$(FUZZ_FLAGS)" \
		LDFLAGS="$(FUZZ_LINK)" fuzzers

fuzz: fuzz-bins
	tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_O) $(FUZZERS)

# The whole suite, on the normal build and then on the sanitizer build.
check: all tests san fuzz-bins
	tests/run.sh . san

check-fast: all tests fuzz-bins
	tests/run.sh .

san:
	$(MAKE) O=san CFLAGS="$(SAN_FLAGS)" LDFLAGS="-fsanitize=address,undefined" all tests

# Serve a scratch copy of the samples on port 1110, so DELE never harms them.
run: $(O)/pop3d
	rm -rf $(O)/run-maildrop
	cp -a maildrop $(O)/run-maildrop
	@echo "serving a copy of maildrop/ on port 1110; try: nc localhost 1110"
	$(O)/pop3d 1110 $(O)/run-maildrop

# The benchmark (bench/README.md); QUICK=1 for a one-minute run.
bench: all
	bench/run.sh $(if $(QUICK),--quick)

# The reference server the benchmark compares with.
bench-deps:
	DEBIAN_FRONTEND=noninteractive apt-get install -y dovecot-pop3d dovecot-core

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(O)/pop3d $(DESTDIR)$(SBINDIR)/pop3d
	install -m 755 $(O)/pop3c $(DESTDIR)$(BINDIR)/pop3c
	install -m 644 pop3d.8 $(DESTDIR)$(MANDIR)/man8/pop3d.8
	install -m 644 pop3c.1 $(DESTDIR)$(MANDIR)/man1/pop3c.1
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(XINETDDIR) \
		$(DESTDIR)$(PROXYDIR)
	install -m 644 $(PROXYCONF) $(DESTDIR)$(PROXYDIR)
	for f in $(UNITS) xinetd/pop3d; do \
		case $$f in xinetd/*) d=$(DESTDIR)$(XINETDDIR);; \
		*) d=$(DESTDIR)$(SYSTEMDUNITDIR);; esac; \
		sed 's|/usr/local/sbin/pop3d|$(SBINDIR)/pop3d|' $$f \
			>$$d/$${f##*/} && chmod 644 $$d/$${f##*/} || exit 1; \
	done

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/pop3d $(DESTDIR)$(BINDIR)/pop3c \
		$(DESTDIR)$(MANDIR)/man8/pop3d.8 $(DESTDIR)$(MANDIR)/man1/pop3c.1 \
		$(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(notdir $(UNITS))) \
		$(DESTDIR)$(XINETDDIR)/pop3d \
		$(addprefix $(DESTDIR)$(PROXYDIR)/,$(notdir $(PROXYCONF)))

clean:
	rm -rf *.o pop3d pop3c $(TEST_BINS) san $(FUZZ_O) run-maildrop \
		tests/__pycache__ \
		.pytest_cache tests/.pytest_cache

.PHONY: all check check-fast san tests fuzzers fuzz-bins fuzz run bench bench-deps install uninstall clean
