/*
 * config -- see config.h. Validation walks the JSON once, key by key; every
 * check goes through a helper that knows the key path, so that every error
 * message names it the same way.
 */
#include "config.h"

#include "verify.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"
#include "log.h"
#include "name.h"

#define CONFIG_MAX_FILE (16u * 1024u * 1024u)

struct verr {
	char *buf;
	size_t len;
	const char *path;
};

static void __attribute__((format(printf, 3, 4)))
verr_set(struct verr *e, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = snprintf(e->buf, e->len, "%s: %s%s", e->path, key ? key : "", key ? ": " : "");
	if (n < 0 || (size_t)n >= e->len)
		return;
	va_start(ap, fmt);
	vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
	va_end(ap);
}

static const char *type_name(const cJSON *v)
{
	switch (v->type & 0xff) {
	case cJSON_False:
	case cJSON_True: return "a boolean";
	case cJSON_NULL: return "null";
	case cJSON_Number: return "a number";
	case cJSON_String: return "a string";
	case cJSON_Array: return "an array";
	case cJSON_Object: return "an object";
	default: return "an invalid value";
	}
}

/* Read an integer in [lo, hi] at key path `key`. */
static int get_uint(const cJSON *v, const char *key, double lo, double hi, uint64_t *out,
		    struct verr *e)
{
	if (!cJSON_IsNumber(v)) {
		verr_set(e, key, "expected an integer between %.0f and %.0f, got %s", lo, hi,
			 type_name(v));
		return -1;
	}
	if (v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
	    v->valuedouble > hi) {
		char num[32];
		json_format_number(v->valuedouble, num);
		verr_set(e, key, "expected an integer between %.0f and %.0f, got %s", lo, hi, num);
		return -1;
	}
	*out = (uint64_t)v->valuedouble;
	return 0;
}

static int get_string(const cJSON *v, const char *key, char **out, struct verr *e)
{
	if (!cJSON_IsString(v) || !v->valuestring) {
		verr_set(e, key, "expected a string, got %s", type_name(v));
		return -1;
	}
	if (v->valuestring[0] == '\0') {
		verr_set(e, key, "must not be empty");
		return -1;
	}
	*out = strdup(v->valuestring);
	if (!*out) {
		verr_set(e, key, "out of memory");
		return -1;
	}
	return 0;
}


/* cJSON keeps every member of an object, duplicates included (RFC 8259
 * leaves them to the parser). A key seen earlier in the same object is an
 * error: the second value would otherwise overwrite (and leak) the first, or
 * overrun what the first one sized ("hooks" twice). */
static bool dup_key(const cJSON *obj, const cJSON *item)
{
	for (const cJSON *q = obj->child; q && q != item; q = q->next)
		if (strcmp(q->string, item->string) == 0)
			return true;
	return false;
}

/* Split `s` ("HOST:PORT") into *host_out (allocated) and *port_out; `key`
 * names it in errors. */
static int split_hostport(const char *s, const char *key, char **host_out, uint16_t *port_out,
			  struct verr *e)
{
	const char *colon, *host, *hend;
	char *endp;
	long port;

	colon = strrchr(s, ':');
	if (!colon || colon == s || colon[1] == '\0')
		goto bad;
	host = s;
	hend = colon;
	if (s[0] == '[') {
		if (colon[-1] != ']' || colon - s < 3)
			goto bad;
		host = s + 1;
		hend = colon - 1;
	} else if (memchr(s, ':', (size_t)(colon - s))) {
		goto bad; /* a bare IPv6 address needs brackets */
	}
	/* digits only: strtol alone would also take " 80", "+80" and "-0" */
	if (colon[1] < '0' || colon[1] > '9')
		goto bad;
	errno = 0;
	port = strtol(colon + 1, &endp, 10);
	if (errno || *endp || port < 0 || port > 65535)
		goto bad;
	*host_out = strndup(host, (size_t)(hend - host));
	if (!*host_out) {
		verr_set(e, key, "out of memory");
		return -1;
	}
	*port_out = (uint16_t)port;
	return 0;
bad:
	verr_set(e, key, "expected \"HOST:PORT\" (port 0-65535, IPv6 as \"[::1]:PORT\"), "
		 "got \"%s\"", s);
	return -1;
}

/* Split cfg->listen into listen_host and listen_port. */
static int split_listen(struct config *cfg, const char *key, struct verr *e)
{
	return split_hostport(cfg->listen, key, &cfg->listen_host, &cfg->listen_port, e);
}

static int parse_listen(struct config *cfg, const cJSON *v, struct verr *e)
{
	if (get_string(v, "listen", &cfg->listen, e) < 0)
		return -1;
	return split_listen(cfg, "listen", e);
}

int config_set_listen(struct config *cfg, const char *listen, char *err, size_t errlen)
{
	struct verr e = {err, errlen, "command line"};
	struct config tmp = {0};
	size_t n = strlen(listen);

	if (n && strspn(listen, "0123456789") == n) {
		/* a bare port keeps the configured host */
		const char *fmt = strchr(cfg->listen_host, ':') ? "[%s]:%s" : "%s:%s";
		size_t len = strlen(cfg->listen_host) + n + 4;
		if ((tmp.listen = malloc(len)))
			snprintf(tmp.listen, len, fmt, cfg->listen_host, listen);
	} else {
		tmp.listen = strdup(listen);
	}
	if (!tmp.listen) {
		verr_set(&e, "--listen", "out of memory");
		return -1;
	}
	if (split_listen(&tmp, "--listen", &e) < 0) {
		free(tmp.listen);
		free(tmp.listen_host);
		return -1;
	}
	free(cfg->listen);
	free(cfg->listen_host);
	cfg->listen = tmp.listen;
	cfg->listen_host = tmp.listen_host;
	cfg->listen_port = tmp.listen_port;
	return 0;
}

/* `dir` relative to the directory of `cfgpath` unless absolute. */
static char *resolve_dir(const char *cfgpath, const char *dir);

/* "admin_listen": "HOST:PORT" or "unix:PATH" (PATH relative to the config
 * file unless absolute). */
static int parse_admin_listen(struct config *cfg, const cJSON *v, struct verr *e)
{
	if (get_string(v, "admin_listen", &cfg->admin_listen, e) < 0)
		return -1;
	if (strncmp(cfg->admin_listen, "unix:", 5) == 0) {
		const char *p = cfg->admin_listen + 5;
		if (!p[0] || strlen(p) > 100) {
			verr_set(e, "admin_listen", "expected \"unix:PATH\" with a path of 1 to 100 "
				 "characters, got \"%s\"", cfg->admin_listen);
			return -1;
		}
		if (!(cfg->admin_unix = resolve_dir(cfg->path, p))) {
			verr_set(e, "admin_listen", "out of memory");
			return -1;
		}
		if (strlen(cfg->admin_unix) > 107) {
			verr_set(e, "admin_listen", "the socket path %s is longer than 107 bytes",
				 cfg->admin_unix);
			return -1;
		}
		return 0;
	}
	return split_hostport(cfg->admin_listen, "admin_listen", &cfg->admin_host,
			      &cfg->admin_port, e);
}

/* "trusted_sha256": an array of SHA-256 digests (64 hex digits each). */
static int parse_trusted(struct config *cfg, const cJSON *v, struct verr *e)
{
	size_t n = (size_t)cJSON_GetArraySize(v), i = 0;
	const cJSON *d;

	if (!cJSON_IsArray(v)) {
		verr_set(e, "trusted_sha256", "expected an array of SHA-256 digests, got %s",
			 type_name(v));
		return -1;
	}
	cfg->trusted_sha256 = calloc(n ? n : 1, sizeof(*cfg->trusted_sha256));
	if (!cfg->trusted_sha256) {
		verr_set(e, "trusted_sha256", "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(d, v)
	{
		char key[64];
		size_t len = cJSON_IsString(d) ? strlen(d->valuestring) : 0;
		snprintf(key, sizeof(key), "trusted_sha256[%zu]", i);
		if (len != 64 || strspn(d->valuestring, "0123456789abcdefABCDEF") != 64) {
			verr_set(e, key, "expected 64 hexadecimal digits (sha256sum's output), got %s",
				 cJSON_IsString(d) ? "another string" : type_name(d));
			return -1;
		}
		for (size_t j = 0; j < 64; j++)
			cfg->trusted_sha256[i][j] = (char)tolower((unsigned char)d->valuestring[j]);
		cfg->trusted_sha256[i][64] = '\0';
		i++;
	}
	cfg->ntrusted = n;
	return 0;
}

static char *resolve_dir(const char *cfgpath, const char *dir)
{
	const char *slash;
	char *out;
	size_t dl;

	if (dir[0] == '/' || !(slash = strrchr(cfgpath, '/')))
		return strdup(dir);
	dl = (size_t)(slash - cfgpath);
	out = malloc(dl + 1 + strlen(dir) + 1);
	if (!out)
		return NULL;
	memcpy(out, cfgpath, dl);
	out[dl] = '/';
	strcpy(out + dl + 1, dir);
	return out;
}

static int cmp_hook(const void *a, const void *b)
{
	return strcmp(((const struct config_hook *)a)->name, ((const struct config_hook *)b)->name);
}

/* A list of plugin names (chain, on_error, after): at least one. */
static int parse_names(const cJSON *k, const char *key, char ***out, size_t *nout,
		       struct verr *e)
{
	size_t n = (size_t)cJSON_GetArraySize(k), i = 0;
	const cJSON *p;

	if (!cJSON_IsArray(k)) {
		verr_set(e, key, "expected an array of plugin names, got %s", type_name(k));
		return -1;
	}
	if (n == 0) {
		verr_set(e, key, "must name at least one plugin");
		return -1;
	}
	*out = calloc(n, sizeof(**out));
	if (!*out) {
		verr_set(e, key, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(p, k)
	{
		char ikey[300];
		snprintf(ikey, sizeof(ikey), "%s[%zu]", key, i);
		if (get_string(p, ikey, &(*out)[i], e) < 0) {
			*nout = i;
			return -1;
		}
		*nout = ++i;
		if (!name_valid(p->valuestring)) {
			verr_set(e, ikey, "\"%s\" is not a valid plugin name", p->valuestring);
			return -1;
		}
	}
	return 0;
}

/* "accept": "json" | "form" | "raw", or an array of them. */
static int parse_accept(const cJSON *k, const char *key, unsigned *out, struct verr *e)
{
	static const char *const names[] = {"json", "form", "raw"};
	const cJSON *one = k, *it;
	unsigned bits = 0;

	if (cJSON_IsArray(k) && cJSON_GetArraySize(k) == 0) {
		verr_set(e, key, "must name at least one of \"json\", \"form\", \"raw\"");
		return -1;
	}
	it = cJSON_IsArray(k) ? k->child : k;
	for (; it; it = cJSON_IsArray(k) ? it->next : NULL) {
		unsigned bit = 0;
		one = it;
		for (unsigned i = 0; i < 3 && cJSON_IsString(one); i++)
			if (strcmp(one->valuestring, names[i]) == 0)
				bit = 1u << i;
		if (!bit) {
			verr_set(e, key, "expected \"json\", \"form\" or \"raw\" (or an array of "
				 "them), got %s%s%s", cJSON_IsString(one) ? "\"" : "",
				 cJSON_IsString(one) ? one->valuestring : type_name(one),
				 cJSON_IsString(one) ? "\"" : "");
			return -1;
		}
		bits |= bit;
	}
	*out = bits;
	return 0;
}

/* "dedup": {"header": NAME | "json_pointer": "/id", "ttl_s", "max_entries", "max_bytes"} */
static int parse_dedup(const cJSON *v, const char *hkey, struct config_dedup **out,
		       struct verr *e)
{
	struct config_dedup *d;
	const cJSON *k;
	char key[320];
	uint64_t u;

	if (!cJSON_IsObject(v)) {
		verr_set(e, hkey, "expected an object {\"header\": NAME} or {\"json_pointer\": "
			 "\"/id\"}, with ttl_s, max_entries, max_bytes, got %s", type_name(v));
		return -1;
	}
	if (!(d = *out = calloc(1, sizeof(*d)))) {
		verr_set(e, hkey, "out of memory");
		return -1;
	}
	d->ttl_s = 86400;
	d->max_entries = 10000;
	d->max_bytes = 16u << 20;
	cJSON_ArrayForEach(k, v)
	{
		snprintf(key, sizeof(key), "%s.%s", hkey, k->string);
		if (dup_key(v, k)) {
			verr_set(e, key, "defined twice");
			return -1;
		}
		if (strcmp(k->string, "header") == 0) {
			if (get_string(k, key, &d->header, e) < 0)
				return -1;
			if (!*d->header) {
				verr_set(e, key, "must name a header");
				return -1;
			}
		} else if (strcmp(k->string, "json_pointer") == 0) {
			if (get_string(k, key, &d->pointer, e) < 0)
				return -1;
			if (d->pointer[0] != '/') {
				verr_set(e, key, "a JSON pointer starts with \"/\" (RFC 6901), got \"%s\"",
					 d->pointer);
				return -1;
			}
		} else if (strcmp(k->string, "ttl_s") == 0) {
			if (get_uint(k, key, 1, 30u * 86400u, &u, e) < 0)
				return -1;
			d->ttl_s = (uint32_t)u;
		} else if (strcmp(k->string, "max_entries") == 0) {
			if (get_uint(k, key, 1, 10000000, &u, e) < 0)
				return -1;
			d->max_entries = (uint32_t)u;
		} else if (strcmp(k->string, "max_bytes") == 0) {
			if (get_uint(k, key, 0, UINT64_C(1) << 40, &u, e) < 0)
				return -1;
			d->max_bytes = u;
		} else {
			verr_set(e, key, "unknown key (expected \"header\", \"json_pointer\", "
				 "\"ttl_s\", \"max_entries\" or \"max_bytes\")");
			return -1;
		}
	}
	if (!d->header == !d->pointer) {
		verr_set(e, hkey, "give exactly one of \"header\" and \"json_pointer\" as the "
			 "delivery's key");
		return -1;
	}
	return 0;
}

static int parse_hook(struct config_hook *h, const cJSON *v, struct verr *e)
{
	char key[256];
	const cJSON *k;
	uint64_t u;

	snprintf(key, sizeof(key), "hooks.%s", v->string);
	if (!name_valid(v->string)) {
		verr_set(e, key, "a hook name is 1-64 characters of A-Z a-z 0-9 _ . -");
		return -1;
	}
	if (!cJSON_IsObject(v)) {
		verr_set(e, key, "expected an object, got %s", type_name(v));
		return -1;
	}
	h->name = strdup(v->string);
	h->after_timeout_ms = 5000;
	if (!h->name) {
		verr_set(e, key, "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(k, v)
	{
		snprintf(key, sizeof(key), "hooks.%s.%s", v->string, k->string);
		if (dup_key(v, k)) {
			verr_set(e, key, "defined twice");
			return -1;
		}
		if (strcmp(k->string, "timeout_ms") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_TIMEOUT_MS, &u, e) < 0)
				return -1;
			h->timeout_ms = (uint32_t)u;
		} else if (strcmp(k->string, "verify") == 0) {
			char msg[600];
			if (verify_parse(k, key, e->path, &h->verify, msg, sizeof(msg)) < 0) {
				verr_set(e, NULL, "%s", msg);
				return -1;
			}
		} else if (strcmp(k->string, "chain") == 0) {
			if (parse_names(k, key, &h->chain, &h->nchain, e) < 0)
				return -1;
		} else if (strcmp(k->string, "on_error") == 0) {
			if (parse_names(k, key, &h->on_error, &h->non_error, e) < 0)
				return -1;
		} else if (strcmp(k->string, "after") == 0) {
			if (parse_names(k, key, &h->after, &h->nafter, e) < 0)
				return -1;
		} else if (strcmp(k->string, "after_timeout_ms") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_TIMEOUT_MS, &u, e) < 0)
				return -1;
			h->after_timeout_ms = (uint32_t)u;
		} else if (strcmp(k->string, "max_body") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_BODY, &u, e) < 0)
				return -1;
			h->max_body = u;
		} else if (strcmp(k->string, "accept") == 0) {
			if (parse_accept(k, key, &h->accept, e) < 0)
				return -1;
		} else if (strcmp(k->string, "dedup") == 0) {
			if (parse_dedup(k, key, &h->dedup, e) < 0)
				return -1;
		} else {
			verr_set(e, key, "unknown key (expected \"chain\", \"on_error\", \"after\", "
				 "\"after_timeout_ms\", \"timeout_ms\", \"max_body\", \"accept\", "
				 "\"verify\" or \"dedup\")");
			return -1;
		}
	}
	return 0;
}

/* Read a number in [lo, hi] (or exactly 0 when zero_ok) at key path `key`. */
static int get_number(const cJSON *v, const char *key, double lo, double hi, bool zero_ok,
		      double *out, struct verr *e)
{
	char num[32];

	if (!cJSON_IsNumber(v)) {
		verr_set(e, key, "expected a number between %g and %g%s, got %s", lo, hi,
			 zero_ok ? " (0: unlimited)" : "", type_name(v));
		return -1;
	}
	if ((v->valuedouble < lo || v->valuedouble > hi) && !(zero_ok && v->valuedouble == 0)) {
		json_format_number(v->valuedouble, num);
		verr_set(e, key, "expected a number between %g and %g%s, got %s", lo, hi,
			 zero_ok ? " (0: unlimited)" : "", num);
		return -1;
	}
	*out = v->valuedouble;
	return 0;
}

/* plugins.<name>.fetch: the only part of a plugin's section the host reads. */
static int parse_plugin_fetch(struct config_fetch *f, const char *plugin, const cJSON *v,
			      struct verr *e)
{
	char key[320];
	const cJSON *k;
	uint64_t u;

	snprintf(key, sizeof(key), "plugins.%s.fetch", plugin);
	if (!cJSON_IsObject(v)) {
		verr_set(e, key, "expected an object with concurrency, rate, burst, max_response, "
			 "got %s", type_name(v));
		return -1;
	}
	cJSON_ArrayForEach(k, v)
	{
		snprintf(key, sizeof(key), "plugins.%s.fetch.%s", plugin, k->string);
		if (dup_key(v, k)) {
			verr_set(e, key, "defined twice");
			return -1;
		}
		if (strcmp(k->string, "concurrency") == 0) {
			if (get_uint(k, key, 0, CONFIG_MAX_FETCH_CONCURRENCY, &u, e) < 0)
				return -1;
			f->concurrency = (unsigned)u;
		} else if (strcmp(k->string, "rate") == 0) {
			if (get_number(k, key, CONFIG_MIN_FETCH_RATE, CONFIG_MAX_FETCH_RATE, true,
				       &f->rate, e) < 0)
				return -1;
		} else if (strcmp(k->string, "burst") == 0) {
			if (get_number(k, key, 1, CONFIG_MAX_FETCH_RATE, false, &f->burst, e) < 0)
				return -1;
		} else if (strcmp(k->string, "max_response") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_FETCH_RESPONSE, &u, e) < 0)
				return -1;
			f->max_response = (size_t)u;
		} else {
			verr_set(e, key, "unknown key (expected concurrency, rate, burst, "
				 "max_response)");
			return -1;
		}
	}
	return 0;
}

/* plugins.<name>.isolate, failure_mode, max_in_flight, rlimit_as, rlimit_cpu. */
static int parse_plugin_host_keys(struct config_plugin *cp, const cJSON *p, struct verr *e)
{
	char key[320];
	const cJSON *k;
	uint64_t u;

	cJSON_ArrayForEach(k, p)
	{
		snprintf(key, sizeof(key), "plugins.%s.%s", p->string, k->string);
		if (strcmp(k->string, "isolate") == 0) {
			if (!cJSON_IsBool(k)) {
				verr_set(e, key, "expected true or false, got %s", type_name(k));
				return -1;
			}
			cp->isolate = cJSON_IsTrue(k);
		} else if (strcmp(k->string, "failure_mode") == 0) {
			if (!cJSON_IsString(k) || (strcmp(k->valuestring, "open") != 0 &&
						   strcmp(k->valuestring, "closed") != 0)) {
				verr_set(e, key, "expected \"open\" (a failed step is skipped) or "
					 "\"closed\" (the call fails)");
				return -1;
			}
			cp->fail_open = strcmp(k->valuestring, "open") == 0;
		} else if (strcmp(k->string, "rlimit_as") == 0) {
			if (get_uint(k, key, 16u << 20, UINT64_C(1) << 46, &u, e) < 0)
				return -1;
			cp->rlimit_as = u;
		} else if (strcmp(k->string, "max_in_flight") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_QUEUE, &u, e) < 0)
				return -1;
			cp->max_in_flight = (unsigned)u;
		} else if (strcmp(k->string, "rlimit_cpu") == 0) {
			if (get_uint(k, key, 1, 86400 * 365, &u, e) < 0)
				return -1;
			cp->rlimit_cpu = (uint32_t)u;
		} else {
			continue;
		}
		if (dup_key(p, k)) {
			verr_set(e, key, "defined twice");
			return -1;
		}
	}
	return 0;
}

static int parse_plugins(struct config *cfg, const cJSON *k, struct verr *e)
{
	size_t n = (size_t)cJSON_GetArraySize(k);
	const cJSON *p;

	if (!cJSON_IsObject(k)) {
		verr_set(e, "plugins", "expected an object (plugin name -> its settings), got %s",
			 type_name(k));
		return -1;
	}
	cfg->plugin_settings = calloc(n ? n : 1, sizeof(*cfg->plugin_settings));
	if (!cfg->plugin_settings) {
		verr_set(e, "plugins", "out of memory");
		return -1;
	}
	cJSON_ArrayForEach(p, k)
	{
		char pk[256];
		struct config_plugin *cp;
		const cJSON *f;
		snprintf(pk, sizeof(pk), "plugins.%s", p->string);
		if (!name_valid(p->string)) {
			verr_set(e, pk, "a plugin name is 1-64 characters of A-Z a-z 0-9 _ . -");
			return -1;
		}
		if (!cJSON_IsObject(p)) {
			verr_set(e, pk, "expected an object, got %s", type_name(p));
			return -1;
		}
		if (dup_key(k, p)) {
			verr_set(e, pk, "defined twice");
			return -1;
		}
		cp = &cfg->plugin_settings[cfg->nplugin_settings];
		if (!(cp->name = strdup(p->string))) {
			verr_set(e, pk, "out of memory");
			return -1;
		}
		cp->isolate = -1;
		cfg->nplugin_settings++;
		if (parse_plugin_host_keys(cp, p, e) < 0)
			return -1;
		/* the rest of the section is the plugin's own: only "fetch",
		 * "isolate", "failure_mode" and "rlimit_*" are ours */
		f = cJSON_GetObjectItemCaseSensitive(p, "fetch");
		if (f) {
			for (const cJSON *q = f->next; q; q = q->next)
				if (strcmp(q->string, "fetch") == 0) {
					snprintf(pk, sizeof(pk), "plugins.%s.fetch", p->string);
					verr_set(e, pk, "defined twice");
					return -1;
				}
			if (parse_plugin_fetch(&cp->fetch, p->string, f, e) < 0)
				return -1;
		}
	}
	cJSON_Delete(cfg->plugins);
	cfg->plugins = cJSON_Duplicate(k, 1);
	if (!cfg->plugins) {
		verr_set(e, "plugins", "out of memory");
		return -1;
	}
	return 0;
}

/* "http": the transport's limits, each a bounded integer. */
static int parse_http(struct config_http *h, const cJSON *v, struct verr *e)
{
	/* pointers, not offsetof: gcc 12 with -fsanitize=address -O2 took the
	 * offset writes for overflows (-Wstringop-overflow) and -Werror broke
	 * `make asan` */
	const struct {
		const char *name;
		double lo, hi;
		uint32_t *p32;
		uint64_t *p64;
	} keys[] = {
		{"max_connections", 0, 10000000, &h->max_connections, NULL},
		{"header_timeout_ms", 1, CONFIG_MAX_TIMEOUT_MS, &h->header_timeout_ms, NULL},
		{"body_timeout_ms", 1, CONFIG_MAX_TIMEOUT_MS, &h->body_timeout_ms, NULL},
		{"idle_timeout_ms", 1, CONFIG_MAX_TIMEOUT_MS, &h->idle_timeout_ms, NULL},
		{"send_timeout_ms", 1, CONFIG_MAX_TIMEOUT_MS, &h->send_timeout_ms, NULL},
		{"max_line", 64, 1 << 20, &h->max_line, NULL},
		{"max_header_bytes", 256, 1 << 24, &h->max_header_bytes, NULL},
		{"max_headers", 1, 10000, &h->max_headers, NULL},
		{"max_inflight_bytes", 0, (double)(UINT64_C(1) << 44), NULL, &h->max_inflight_bytes},
		{"max_json_values", 0, 1e9, NULL, &h->max_json_values},
	};
	const cJSON *k;
	char key[128];
	uint64_t u;

	if (!cJSON_IsObject(v)) {
		verr_set(e, "http", "expected an object of limits, got %s", type_name(v));
		return -1;
	}
	cJSON_ArrayForEach(k, v)
	{
		size_t i, n = sizeof(keys) / sizeof(keys[0]);
		snprintf(key, sizeof(key), "http.%.100s", k->string);
		if (dup_key(v, k)) {
			verr_set(e, key, "defined twice");
			return -1;
		}
		for (i = 0; i < n && strcmp(keys[i].name, k->string) != 0; i++)
			;
		if (i == n) {
			verr_set(e, key, "unknown key (expected one of max_connections, "
				 "header_timeout_ms, body_timeout_ms, idle_timeout_ms, send_timeout_ms, "
				 "max_line, max_header_bytes, max_headers, max_inflight_bytes, "
				 "max_json_values)");
			return -1;
		}
		if (get_uint(k, key, keys[i].lo, keys[i].hi, &u, e) < 0)
			return -1;
		if (keys[i].p64)
			*keys[i].p64 = u;
		else
			*keys[i].p32 = (uint32_t)u;
	}
	return 0;
}

static int parse_root(struct config *cfg, const cJSON *root, struct verr *e)
{
	const cJSON *k;
	uint64_t u;
	long ncpu;
	bool have_queue = false;

	if (!cJSON_IsObject(root)) {
		verr_set(e, NULL, "expected a JSON object at the top, got %s", type_name(root));
		return -1;
	}
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->workers = ncpu > 0 ? (unsigned)ncpu : 1;
	cfg->reactors = 1;
	cfg->timeout_ms = 10000;
	cfg->max_body = 1024 * 1024;
	cfg->max_output = 16 * 1024 * 1024;
	cfg->loop_warn_ms = 100;
	cfg->metrics = 1;
	cfg->drain_ms = 10000;
	cfg->log_level = LOG_INFO;
	cfg->isolate_procs = 2;
	cfg->quarantine_after = 3;
	cfg->quarantine_window_s = 60;
	cfg->http = (struct config_http){
		.max_connections = 0, /* from the open-file limit (main) */
		.header_timeout_ms = 10000, .body_timeout_ms = 30000,
		.idle_timeout_ms = 60000, .send_timeout_ms = 60000,
		.max_line = 8192, .max_header_bytes = 65536, .max_headers = 100,
		.max_inflight_bytes = 256u << 20, .max_json_values = 200000};

	cJSON_ArrayForEach(k, root)
	{
		const char *key = k->string;
		if (dup_key(root, k)) {
			verr_set(e, key, "defined twice");
			return -1;
		}
		if (strcmp(key, "listen") == 0) {
			if (parse_listen(cfg, k, e) < 0)
				return -1;
		} else if (strcmp(key, "plugin_dir") == 0) {
			char *dir;
			if (get_string(k, key, &dir, e) < 0)
				return -1;
			cfg->plugin_dir = resolve_dir(cfg->path, dir);
			free(dir);
			if (!cfg->plugin_dir) {
				verr_set(e, key, "out of memory");
				return -1;
			}
		} else if (strcmp(key, "trusted_sha256") == 0) {
			if (parse_trusted(cfg, k, e) < 0)
				return -1;
		} else if (strcmp(key, "state_dir") == 0) {
			char *dir;
			if (get_string(k, key, &dir, e) < 0)
				return -1;
			cfg->state_dir = resolve_dir(cfg->path, dir);
			free(dir);
			if (!cfg->state_dir) {
				verr_set(e, key, "out of memory");
				return -1;
			}
		} else if (strcmp(key, "pid_file") == 0) {
			char *f;
			if (get_string(k, key, &f, e) < 0)
				return -1;
			cfg->pid_file = f[0] ? resolve_dir(cfg->path, f) : NULL;
			if (f[0] && !cfg->pid_file) {
				free(f);
				verr_set(e, key, "out of memory");
				return -1;
			}
			free(f);
		} else if (strcmp(key, "admin_listen") == 0) {
			if (parse_admin_listen(cfg, k, e) < 0)
				return -1;
		} else if (strcmp(key, "runtime_dir") == 0) {
			if (get_string(k, key, &cfg->runtime_dir, e) < 0)
				return -1;
		} else if (strcmp(key, "reactors") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_REACTORS, &u, e) < 0)
				return -1;
			cfg->reactors = (unsigned)u;
		} else if (strcmp(key, "workers") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_WORKERS, &u, e) < 0)
				return -1;
			cfg->workers = (unsigned)u;
		} else if (strcmp(key, "queue") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_QUEUE, &u, e) < 0)
				return -1;
			cfg->queue = (unsigned)u;
			have_queue = true;
		} else if (strcmp(key, "timeout_ms") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_TIMEOUT_MS, &u, e) < 0)
				return -1;
			cfg->timeout_ms = (uint32_t)u;
		} else if (strcmp(key, "max_stuck_workers") == 0) {
			if (get_uint(k, key, 0, CONFIG_MAX_WORKERS, &u, e) < 0)
				return -1;
			cfg->max_stuck_workers = (unsigned)u;
			cfg->max_stuck_set = 1;
		} else if (strcmp(key, "loop_warn_ms") == 0) {
			if (get_uint(k, key, 0, CONFIG_MAX_TIMEOUT_MS, &u, e) < 0)
				return -1;
			cfg->loop_warn_ms = (uint32_t)u;
		} else if (strcmp(key, "loop_abort_ms") == 0) {
			if (get_uint(k, key, 0, CONFIG_MAX_TIMEOUT_MS, &u, e) < 0)
				return -1;
			cfg->loop_abort_ms = (uint32_t)u;
		} else if (strcmp(key, "isolate") == 0) {
			if (!cJSON_IsBool(k)) {
				verr_set(e, key, "expected true or false, got %s", type_name(k));
				return -1;
			}
			cfg->isolate = cJSON_IsTrue(k);
		} else if (strcmp(key, "metrics") == 0) {
			if (!cJSON_IsBool(k)) {
				verr_set(e, key, "expected true or false, got %s", type_name(k));
				return -1;
			}
			cfg->metrics = cJSON_IsTrue(k);
		} else if (strcmp(key, "isolate_procs") == 0) {
			if (get_uint(k, key, 1, CONFIG_MAX_ISOLATE_PROCS, &u, e) < 0)
				return -1;
			cfg->isolate_procs = (unsigned)u;
		} else if (strcmp(key, "quarantine_after") == 0) {
			if (get_uint(k, key, 1, 1000000, &u, e) < 0)
				return -1;
			cfg->quarantine_after = (unsigned)u;
		} else if (strcmp(key, "quarantine_window_s") == 0) {
			if (get_uint(k, key, 1, 86400 * 365, &u, e) < 0)
				return -1;
			cfg->quarantine_window_s = (uint32_t)u;
		} else if (strcmp(key, "max_output") == 0) {
			if (get_uint(k, key, 2, CONFIG_MAX_OUTPUT, &u, e) < 0)
				return -1;
			cfg->max_output = (size_t)u;
		} else if (strcmp(key, "max_body") == 0) {
			if (get_uint(k, key, 2, CONFIG_MAX_BODY, &u, e) < 0)
				return -1;
			cfg->max_body = (size_t)u;
		} else if (strcmp(key, "drain_ms") == 0) {
			if (get_uint(k, key, 0, CONFIG_MAX_TIMEOUT_MS, &u, e) < 0)
				return -1;
			cfg->drain_ms = (uint32_t)u;
		} else if (strcmp(key, "log_level") == 0) {
			int lvl = cJSON_IsString(k) ? log_level_parse(k->valuestring) : -1;
			if (lvl < 0) {
				verr_set(e, key, "expected one of \"error\", \"warn\", \"info\", "
					 "\"debug\"");
				return -1;
			}
			cfg->log_level = lvl;
		} else if (strcmp(key, "access_log") == 0) {
			char *v;
			if (get_string(k, key, &v, e) < 0)
				return -1;
			free(cfg->access_log);
			cfg->access_log = NULL;
			if (strcmp(v, "off") != 0) {
				cfg->access_log = strcmp(v, "-") == 0 ? strdup(v)
								      : resolve_dir(cfg->path, v);
				if (!cfg->access_log) {
					free(v);
					verr_set(e, key, "out of memory");
					return -1;
				}
			}
			free(v);
		} else if (strcmp(key, "access_log_format") == 0) {
			if (!cJSON_IsString(k) || (strcmp(k->valuestring, "text") != 0 &&
						    strcmp(k->valuestring, "json") != 0)) {
				verr_set(e, key, "expected \"text\" or \"json\"");
				return -1;
			}
			cfg->access_log_json = strcmp(k->valuestring, "json") == 0;
		} else if (strcmp(key, "hooks") == 0) {
			const cJSON *h;
			size_t n = (size_t)cJSON_GetArraySize(k);
			if (!cJSON_IsObject(k)) {
				verr_set(e, key, "expected an object (hook name -> settings), got %s",
					 type_name(k));
				return -1;
			}
			cfg->hooks = calloc(n ? n : 1, sizeof(*cfg->hooks));
			if (!cfg->hooks) {
				verr_set(e, key, "out of memory");
				return -1;
			}
			cJSON_ArrayForEach(h, k)
			{
				if (dup_key(k, h)) {
					char hk[256];
					snprintf(hk, sizeof(hk), "hooks.%s", h->string);
					verr_set(e, hk, "defined twice");
					return -1;
				}
				cfg->nhooks++;
				if (parse_hook(&cfg->hooks[cfg->nhooks - 1], h, e) < 0)
					return -1;
			}
			qsort(cfg->hooks, cfg->nhooks, sizeof(*cfg->hooks), cmp_hook);
		} else if (strcmp(key, "plugins") == 0) {
			if (parse_plugins(cfg, k, e) < 0)
				return -1;
		} else if (strcmp(key, "http") == 0) {
			if (parse_http(&cfg->http, k, e) < 0)
				return -1;
		} else {
			verr_set(e, key, "unknown key (expected one of listen, plugin_dir, "
				 "runtime_dir, state_dir, pid_file, admin_listen, trusted_sha256, reactors, workers, queue, timeout_ms, max_body, "
				 "max_output, max_stuck_workers, drain_ms, loop_warn_ms, loop_abort_ms, log_level, "
				 "access_log, access_log_format, isolate, isolate_procs, quarantine_after, "
				 "quarantine_window_s, metrics, http, hooks, plugins)");
			return -1;
		}
	}
	if (!cfg->listen) {
		verr_set(e, "listen", "missing (for example \"127.0.0.1:8080\")");
		return -1;
	}
	if (cfg->loop_abort_ms && (!cfg->loop_warn_ms || cfg->loop_abort_ms < cfg->loop_warn_ms)) {
		verr_set(e, "loop_abort_ms", "must not be below loop_warn_ms, which must not be 0");
		return -1;
	}
	if (!cfg->plugin_dir) {
		verr_set(e, "plugin_dir", "missing (the folder of plugin .so files)");
		return -1;
	}
	if (!have_queue)
		cfg->queue = cfg->workers * 64 > CONFIG_MAX_QUEUE ? CONFIG_MAX_QUEUE
								   : cfg->workers * 64;
	if (!cfg->max_stuck_set)
		cfg->max_stuck_workers = cfg->workers;
	return 0;
}

int config_parse(const char *text, size_t len, const char *path, struct config **out, char *err,
		 size_t errlen)
{
	struct verr e = {err, errlen, path};
	struct config *cfg;
	cJSON *root = NULL;
	char perr[256];

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg || !(cfg->path = strdup(path)) || !(cfg->plugins = cJSON_CreateObject())) {
		verr_set(&e, NULL, "out of memory");
		goto fail;
	}
	if (json_parse(text, len, &root, perr, sizeof(perr)) < 0) {
		verr_set(&e, NULL, "%s", perr);
		goto fail;
	}
	if (parse_root(cfg, root, &e) < 0)
		goto fail;
	cfg->max_body_any = cfg->max_body;
	for (size_t i = 0; i < cfg->nhooks; i++)
		if (cfg->hooks[i].max_body > cfg->max_body_any)
			cfg->max_body_any = (size_t)cfg->hooks[i].max_body;
	cJSON_Delete(root);
	*out = cfg;
	return 0;
fail:
	cJSON_Delete(root);
	config_free(cfg);
	return -1;
}

int config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct verr e = {err, errlen, path};
	struct stat st;
	char *text = NULL;
	size_t got = 0;
	int fd, rc = -1;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		verr_set(&e, NULL, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		verr_set(&e, NULL, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		verr_set(&e, NULL, "not a regular file");
		goto out;
	}
	if ((uint64_t)st.st_size > CONFIG_MAX_FILE) {
		verr_set(&e, NULL, "larger than %u bytes", CONFIG_MAX_FILE);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		verr_set(&e, NULL, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, text + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			verr_set(&e, NULL, "cannot read: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	rc = config_parse(text, got, path, out, err, errlen);
out:
	free(text);
	close(fd);
	return rc;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < cfg->nhooks; i++) {
		for (size_t j = 0; j < cfg->hooks[i].nchain; j++)
			free(cfg->hooks[i].chain[j]);
		free(cfg->hooks[i].chain);
		for (size_t j = 0; j < cfg->hooks[i].non_error; j++)
			free(cfg->hooks[i].on_error[j]);
		free(cfg->hooks[i].on_error);
		for (size_t j = 0; j < cfg->hooks[i].nafter; j++)
			free(cfg->hooks[i].after[j]);
		free(cfg->hooks[i].after);
		if (cfg->hooks[i].dedup) {
			free(cfg->hooks[i].dedup->header);
			free(cfg->hooks[i].dedup->pointer);
			free(cfg->hooks[i].dedup);
		}
		free(cfg->hooks[i].name);
		verify_free(cfg->hooks[i].verify);
	}
	free(cfg->hooks);
	for (size_t i = 0; i < cfg->nplugin_settings; i++)
		free(cfg->plugin_settings[i].name);
	free(cfg->plugin_settings);
	cJSON_Delete(cfg->plugins);
	free(cfg->path);
	free(cfg->listen);
	free(cfg->listen_host);
	free(cfg->plugin_dir);
	free(cfg->runtime_dir);
	free(cfg->state_dir);
	free(cfg->pid_file);
	free(cfg->admin_listen);
	free(cfg->admin_host);
	free(cfg->admin_unix);
	free(cfg->access_log);
	free(cfg->trusted_sha256);
	free(cfg);
}

const struct config_hook *config_find_hook(const struct config *cfg, const char *name)
{
	struct config_hook key = {.name = (char *)name};

	if (!cfg->nhooks)
		return NULL;
	return bsearch(&key, cfg->hooks, cfg->nhooks, sizeof(*cfg->hooks), cmp_hook);
}

const cJSON *config_plugin_section(const struct config *cfg, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(cfg->plugins, name);
}

const struct config_fetch *config_plugin_fetch(const struct config *cfg, const char *name)
{
	static const struct config_fetch none;
	const struct config_plugin *cp = config_plugin_settings(cfg, name);

	return cp ? &cp->fetch : &none;
}

uint32_t config_hook_timeout(const struct config *cfg, const char *hook)
{
	const struct config_hook *h = config_find_hook(cfg, hook);

	return h && h->timeout_ms ? h->timeout_ms : cfg->timeout_ms;
}

const struct config_plugin *config_plugin_settings(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nplugin_settings; i++)
		if (strcmp(cfg->plugin_settings[i].name, name) == 0)
			return &cfg->plugin_settings[i];
	return NULL;
}

int config_plugin_isolated(const struct config *cfg, const char *name)
{
	const struct config_plugin *cp = config_plugin_settings(cfg, name);

	return cp && cp->isolate >= 0 ? cp->isolate : cfg->isolate;
}

int config_plugin_fail_open(const struct config *cfg, const char *name)
{
	const struct config_plugin *cp = config_plugin_settings(cfg, name);

	return cp ? cp->fail_open : 0;
}
