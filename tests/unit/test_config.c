/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for config: defaults, every validation error with the key path
 * it must name, secrets from the environment and from files, path and
 * endpoint resolution, event names and reference counting.  JSON texts are
 * written with single quotes and turned into double quotes by testlib_dq().
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/sig.h"
#include "testlib.h"

#define SEC1 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
/* An admin token strong enough for nb_config_load(). */
#define TOKEN "tok_9fK2xQ7mLpA4vR8sT1uW6yZ3bC5dE0gH"
#define SEC2  "whsec_oKGio6SlpqeoqaqrrK2ur7CxsrO0tba3uLm6u7y9vr8="
#define PK1   "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
#define PK2   "whpk_ANBaHR6iUTltVXr71FiLPG2Z2+uXL+0QoyVi6ibc3Po="

/* One valid source, to embed: 'sources':[SRC] */
#define SRC  "{'name':'acme','signing_secrets':['" SEC1 "'],'write_key':'wk'}"
#define SRC2 "{'name':'beta','public_keys':['" PK1 "'],'write_key':'wk2'}"
#define MIN  "{'sources':[" SRC "]}"

static char tmpdir[PATH_MAX];

static int
load(struct nb_config **cfg, const char *text, const char *dir, char *err,
    size_t errlen)
{
	char *t = testlib_dq(text);
	int rc;

	rc = nb_config_load_json(cfg, t, dir, err, errlen);
	free(t);
	return rc;
}

static struct nb_config *
load_ok(const char *text)
{
	struct nb_config *cfg = NULL;
	char err[512];

	if (load(&cfg, text, "/srv/nb", err, sizeof(err)) == -1)
		fail_msg("unexpected error: %s", err);
	assert_non_null(cfg);
	return cfg;
}

static void
expect_error(const char *text, const char *want)
{
	struct nb_config *cfg = (struct nb_config *)1;
	char err[512];

	memset(err, 'x', sizeof(err));
	if (load(&cfg, text, "/srv/nb", err, sizeof(err)) == 0)
		fail_msg("loaded but expected error '%s': %s", want, text);
	assert_null(cfg);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' lacks '%s' for %s", err, want, text);
}

static void
write_file(const char *name, const char *content)
{
	char path[PATH_MAX];
	FILE *f;

	assert_true(snprintf(path, sizeof(path), "%s/%s", tmpdir, name) <
	    (int)sizeof(path));
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fputs(content, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void
test_defaults(void **state)
{
	struct nb_config *cfg;
	const struct nb_source *s;
	long cpus;

	(void)state;
	cfg = load_ok(MIN);
	assert_null(cfg->path);
	assert_string_equal(cfg->listen, "127.0.0.1:8080");
	assert_string_equal(cfg->admin_listen, "127.0.0.1:8081");
	assert_null(cfg->admin_token);
	assert_int_equal(cfg->log_level, NB_LOG_INFO);
	assert_int_equal(cfg->log_format, NB_LOG_LOGFMT);
	assert_string_equal(cfg->store.driver, "sqlite");
	assert_string_equal(cfg->store.path, "/srv/nb/nudgebridge.db");
	assert_null(cfg->store.dsn);
	assert_int_equal(cfg->store.lease_s, 30);
	assert_int_equal(cfg->store.max_size_bytes, 0);
	assert_int_equal(cfg->limits.max_body_bytes, 1048576);
	assert_int_equal(cfg->limits.timestamp_tolerance_s, 300);
	assert_int_equal(cfg->limits.dedupe_window_s, 604800);
	assert_int_equal(cfg->limits.max_header_bytes, 16384);
	assert_int_equal(cfg->limits.read_timeout_s, 30);
	assert_int_equal(cfg->limits.drain_s, 10);
	assert_int_equal(cfg->limits.max_inflight_body_bytes, 64 * 1048576);
	assert_int_equal(cfg->admin_max_connections, 64);
	cpus = sysconf(_SC_NPROCESSORS_ONLN) - 1;
	assert_int_equal(cfg->http_threads, cpus < 1 ? 1 : cpus > 8 ? 8 : cpus);
	assert_null(cfg->segment.endpoint);
	assert_int_equal(cfg->segment.flush_interval_ms, 200);
	assert_int_equal(cfg->segment.max_batch_bytes, 500000);
	assert_int_equal(cfg->segment.max_batch_count, 2500);
	assert_int_equal(cfg->segment.max_message_bytes, 32000);
	assert_int_equal(cfg->segment.timeout_ms, 10000);
	assert_true(cfg->segment.rate_limit_rps == 50.0);
	assert_int_equal(cfg->segment.max_inflight, 4);
	assert_int_equal(cfg->segment.pause_s, 300);
	assert_int_equal(cfg->segment.retention_s, 86400);
	assert_int_equal(cfg->segment.gzip, 1);
	assert_int_equal(cfg->segment.retry.initial_ms, 500);
	assert_int_equal(cfg->segment.retry.max_ms, 60000);
	assert_int_equal(cfg->segment.retry.max_attempts, 0);
	assert_int_equal(cfg->segment.retry.max_age_s, 259200);
	assert_int_equal(cfg->nsources, 1);
	s = &cfg->sources[0];
	assert_string_equal(s->name, "acme");
	assert_string_equal(s->write_key, "wk");
	assert_string_equal(s->endpoint, NB_ENDPOINT_US);
	assert_int_equal(s->mapping.anon, NB_SEGMENT_ANON_EMAIL);
	assert_int_equal(nb_sig_keyring_count(s->keys), 1);
	assert_ptr_equal(nb_config_source(cfg, "acme"), s);
	assert_null(nb_config_source(cfg, "acm"));
	assert_null(nb_config_source(cfg, "acmee"));
	nb_config_unref(cfg);
}

static void
test_full(void **state)
{
	struct nb_config *cfg;
	const struct nb_source *s;

	(void)state;
	cfg = load_ok("{'listen':'0.0.0.0:9000',"
		      "'admin':{'listen':'[::1]:9001','token':'" TOKEN "',"
		      "'max_connections':8},"
		      "'log':{'level':'debug','format':'json'},"
		      "'store':{'driver':'postgres','dsn':'host=x',"
		      "'lease_s':60,'max_size_bytes':1000000},"
		      "'limits':{'max_body_bytes':2048,"
		      "'timestamp_tolerance_s':60,'dedupe_window_s':3600,"
		      "'max_header_bytes':8192,'read_timeout_s':5,"
		      "'drain_s':0,'max_inflight_body_bytes':4096},"
		      "'segment':{'endpoint':'http://127.0.0.1:9/',"
		      "'flush_interval_ms':50,'max_batch_bytes':1000,"
		      "'max_batch_count':10,'max_message_bytes':900,"
		      "'timeout_ms':100,'rate_limit_rps':0.5,"
		      "'max_inflight':2,'pause_s':5,'retention_s':0,"
		      "'retry':{'initial_ms':10,'max_ms':20,"
		      "'max_attempts':3,'max_age_s':60}},"
		      "'sources':[{'name':'a-1_b','signing_secrets':['" SEC1
		      "','" SEC2 "'],'public_keys':['" PK1 "','" PK2 "'],"
		      "'write_key':'wk','region':'eu','anonymous_id':'sha256',"
		      "'event_names':{'email.unsubscribed':'Email "
		      "Unsubscribed'}}," SRC2 "]}");
	assert_string_equal(cfg->listen, "0.0.0.0:9000");
	assert_string_equal(cfg->admin_listen, "[::1]:9001");
	assert_string_equal(cfg->admin_token, TOKEN);
	assert_int_equal(cfg->log_level, NB_LOG_DEBUG);
	assert_int_equal(cfg->log_format, NB_LOG_JSON);
	assert_string_equal(cfg->store.driver, "postgres");
	assert_string_equal(cfg->store.dsn, "host=x");
	assert_int_equal(cfg->store.lease_s, 60);
	assert_int_equal(cfg->store.max_size_bytes, 1000000);
	assert_int_equal(cfg->limits.max_body_bytes, 2048);
	assert_int_equal(cfg->limits.timestamp_tolerance_s, 60);
	assert_int_equal(cfg->limits.dedupe_window_s, 3600);
	assert_int_equal(cfg->limits.max_header_bytes, 8192);
	assert_int_equal(cfg->limits.read_timeout_s, 5);
	assert_int_equal(cfg->limits.drain_s, 0);
	assert_int_equal(cfg->limits.max_inflight_body_bytes, 4096);
	assert_int_equal(cfg->admin_max_connections, 8);
	assert_string_equal(cfg->segment.endpoint, "http://127.0.0.1:9");
	assert_int_equal(cfg->segment.flush_interval_ms, 50);
	assert_int_equal(cfg->segment.max_batch_bytes, 1000);
	assert_int_equal(cfg->segment.max_batch_count, 10);
	assert_int_equal(cfg->segment.max_message_bytes, 900);
	assert_int_equal(cfg->segment.timeout_ms, 100);
	assert_true(cfg->segment.rate_limit_rps == 0.5);
	assert_int_equal(cfg->segment.max_inflight, 2);
	assert_int_equal(cfg->segment.pause_s, 5);
	assert_int_equal(cfg->segment.retention_s, 0);
	assert_int_equal(cfg->segment.retry.initial_ms, 10);
	assert_int_equal(cfg->segment.retry.max_ms, 20);
	assert_int_equal(cfg->segment.retry.max_attempts, 3);
	assert_int_equal(cfg->segment.retry.max_age_s, 60);
	assert_int_equal(cfg->nsources, 2);
	s = nb_config_source(cfg, "a-1_b");
	assert_non_null(s);
	assert_int_equal(nb_sig_keyring_count(s->keys), 4);
	assert_string_equal(s->endpoint, NB_ENDPOINT_EU);
	assert_int_equal(s->mapping.anon, NB_SEGMENT_ANON_SHA256);
	assert_string_equal(
	    nb_segment_event_name(&s->mapping, "email.unsubscribed"),
	    "Email Unsubscribed");
	s = nb_config_source(cfg, "beta");
	assert_non_null(s);
	assert_int_equal(nb_sig_keyring_count(s->keys), 1);
	assert_string_equal(s->endpoint, "http://127.0.0.1:9");
	assert_string_equal(
	    nb_segment_event_name(&s->mapping, "email.unsubscribed"),
	    "Unsubscribed");
	nb_config_unref(cfg);
}

static const struct {
	const char *text;
	const char *want;
} error_cases[] = {
    {"not json", "config: invalid JSON at line 1"},
    {"", "config: invalid JSON"},
    {"[]", "config: must be a JSON object"},
    {"{}", "sources: required"},
    {"{'sources':null}", "sources: required"},
    {"{'sources':[]}", "sources: must list at least one source"},
    {"{'sources':{}}", "sources: must be an array"},
    {"{'sources':[1]}", "sources[0]: must be an object"},
    {"{'sources':[" SRC ",'x']}", "sources[1]: must be an object"},
    {"{'sources':[{'name':'acme','write_key':'k'}]}",
	"sources[0]: needs at least one signing secret or public key"},
    {"{'sources':[{'name':'acme','signing_secrets':[],"
     "'write_key':'k'}]}",
	"sources[0]: needs at least one signing secret or public key"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "']}]}",
	"sources[0].write_key: required"},
    {"{'sources':[{'signing_secrets':['" SEC1 "'],'write_key':'k'}]}",
	"sources[0].name: required"},
    {"{'sources':[{'name':'Acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k'}]}",
	"sources[0].name: must match"},
    {"{'sources':[{'name':'_acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k'}]}",
	"sources[0].name: must match"},
    {"{'sources':[{'name':7,'signing_secrets':['" SEC1 "'],"
     "'write_key':'k'}]}",
	"sources[0].name: must be a string"},
    {"{'sources':[" SRC "," SRC2 "," SRC "]}",
	"sources[2].name: duplicate source name acme"},
    {"{'sources':[{'name':'acme','signing_secrets':['nope'],"
     "'write_key':'k'}]}",
	"sources[0].signing_secrets[0]: not a valid whsec_ secret"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "','" PK1
     "'],'write_key':'k'}]}",
	"sources[0].signing_secrets[1]: not a valid whsec_ secret"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "',3],"
     "'write_key':'k'}]}",
	"sources[0].signing_secrets[1]: must be a string"},
    {"{'sources':[{'name':'acme','signing_secrets':'" SEC1 "',"
     "'write_key':'k'}]}",
	"sources[0].signing_secrets: must be an array"},
    {"{'sources':[{'name':'acme','public_keys':['" SEC1 "'],"
     "'write_key':'k'}]}",
	"sources[0].public_keys[0]: not a valid whpk_ public key"},
    {"{'sources':[{'name':'acme','public_keys':['whpk_AAAA'],"
     "'write_key':'k'}]}",
	"sources[0].public_keys[0]: not a valid whpk_"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','write_key_env':'X'}]}",
	"sources[0].write_key_env: only one of write_key, write_key_env "
	"and write_key_file may be given"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key_env':'X','write_key_file':'y'}]}",
	"only one of write_key"},
    {"{'sources':[" SRC ",{'name':'acme2','signing_secrets':['" SEC1 "'],"
     "'write_key_env':'NB_TEST_UNSET_VAR'}]}",
	"sources[1].write_key_env: environment variable NB_TEST_UNSET_VAR "
	"is not set"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key_env':''}]}",
	"sources[0].write_key_env: must be a non-empty string"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key_file':'no/such.key'}]}",
	"sources[0].write_key_file: cannot read /srv/nb/no/such.key: "},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':''}]}",
	"sources[0].write_key: must not be empty"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':5}]}",
	"sources[0].write_key: must be a string"},
    {"{'sources':[{'name':'acme','signing_secrets_env':'NB_TEST_UNSET_VAR',"
     "'write_key':'k'}]}",
	"sources[0].signing_secrets_env: environment variable "
	"NB_TEST_UNSET_VAR is not set"},
    {"{'lisen':'1.2.3.4:5','sources':[" SRC "]}", "lisen: unknown key"},
    {"{'segment':{'retry':{'max_atempts':3}},'sources':[" SRC "]}",
	"segment.retry.max_atempts: unknown key"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','regoin':'eu'}]}",
	"sources[0].regoin: unknown key"},
    {"{'admin':{'tokn':'x'},'sources':[" SRC "]}", "admin.tokn: unknown key"},
    {"{'store':{'paht':'x'},'sources':[" SRC "]}", "store.paht: unknown key"},
    {"{'limits':{'max_body':1},'sources':[" SRC "]}",
	"limits.max_body: unknown key"},
    {"{'log':{'lvl':'x'},'sources':[" SRC "]}", "log.lvl: unknown key"},
    {"{'segment':{'endpont':'x'},'sources':[" SRC "]}",
	"segment.endpont: unknown key"},
    {"{'listen':8080,'sources':[" SRC "]}", "listen: must be a string"},
    {"{'listen':'localhost','sources':[" SRC "]}", "listen: must be host:port"},
    {"{'listen':'127.0.0.1:70000','sources':[" SRC "]}",
	"listen: must be host:port with port 0..65535"},
    {"{'listen':':80','sources':[" SRC "]}", "listen: must be host:port"},
    {"{'listen':'h:8x','sources':[" SRC "]}", "listen: must be host:port"},
    {"{'admin':{'listen':'::1:8081'},'sources':[" SRC "]}",
	"admin.listen: an IPv6 host must be written [addr]:port"},
    {"{'admin':[],'sources':[" SRC "]}", "admin: must be an object"},
    {"{'admin':{'token':'a','token_file':'b'},'sources':[" SRC "]}",
	"admin.token_file: only one of token, token_env and token_file"},
    /* The token must be strong: 32 characters, 8 of them different. */
    {"{'admin':{'token':'tok'},'sources':[" SRC "]}",
	"admin.token: too weak: use at least 32 characters, 8 of them "
	"different"},
    {"{'admin':{'token':'0123456789abcdef0123456789abcde'},'sources':[" SRC
     "]}",
	"admin.token: too weak"},
    {"{'admin':{'token':'abcdabcdabcdabcdabcdabcdabcdabcdabcdabcd'},"
     "'sources':[" SRC "]}",
	"admin.token: too weak"},
    {"{'log':{'level':'verbose'},'sources':[" SRC "]}",
	"log.level: must be one of debug, info, warn, error"},
    {"{'log':{'format':'xml'},'sources':[" SRC "]}",
	"log.format: must be one of logfmt, json"},
    {"{'log':{'format':1},'sources':[" SRC "]}",
	"log.format: must be a string"},
    {"{'store':{'driver':'mysql'},'sources':[" SRC "]}",
	"store.driver: must be one of sqlite, postgres"},
    {"{'store':{'driver':'postgres'},'sources':[" SRC "]}",
	"store.dsn: required with driver postgres"},
    {"{'store':{'dsn':'host=x'},'sources':[" SRC "]}",
	"store.dsn: only valid with driver postgres"},
    {"{'store':{'lease_s':0},'sources':[" SRC "]}",
	"store.lease_s: must be between 1 and 86400"},
    {"{'store':{'lease_s':'30'},'sources':[" SRC "]}",
	"store.lease_s: must be an integer"},
    {"{'store':{'max_size_bytes':-1},'sources':[" SRC "]}",
	"store.max_size_bytes: must be between 0"},
    {"{'store':{'path':''},'sources':[" SRC "]}",
	"store.path: must not be empty"},
    {"{'limits':{'max_body_bytes':0},'sources':[" SRC "]}",
	"limits.max_body_bytes: must be between 1"},
    {"{'limits':{'timestamp_tolerance_s':1.5},'sources':[" SRC "]}",
	"limits.timestamp_tolerance_s: must be an integer"},
    {"{'limits':{'dedupe_window_s':60},'sources':[" SRC "]}",
	"limits.dedupe_window_s: must be at least "
	"limits.timestamp_tolerance_s (300)"},
    {"{'limits':{'dedupe_window_s':0},'sources':[" SRC "]}",
	"limits.dedupe_window_s: must be at least "
	"limits.timestamp_tolerance_s (300)"},
    {"{'limits':{'dedupe_window_s':59,'timestamp_tolerance_s':60},"
     "'sources':[" SRC "]}",
	"limits.dedupe_window_s: must be at least "
	"limits.timestamp_tolerance_s (60)"},
    {"{'limits':{'max_inflight_body_bytes':1000},'sources':[" SRC "]}",
	"limits.max_inflight_body_bytes: must be at least "
	"limits.max_body_bytes"},
    {"{'limits':{'max_inflight_body_bytes':0},'sources':[" SRC "]}",
	"limits.max_inflight_body_bytes: must be between 1"},
    {"{'admin':{'max_connections':0},'sources':[" SRC "]}",
	"admin.max_connections: must be between 1"},
    {"{'limits':{'dedupe_window_s':true},'sources':[" SRC "]}",
	"limits.dedupe_window_s: must be an integer"},
    {"{'limits':{'max_header_bytes':10},'sources':[" SRC "]}",
	"limits.max_header_bytes: must be between 1024"},
    {"{'limits':{'read_timeout_s':0},'sources':[" SRC "]}",
	"limits.read_timeout_s: must be between 1"},
    {"{'limits':{'drain_s':-1},'sources':[" SRC "]}",
	"limits.drain_s: must be between 0"},
    {"{'segment':{'max_batch_bytes':500001},'sources':[" SRC "]}",
	"segment.max_batch_bytes: must be between 1 and 500000"},
    {"{'segment':{'max_batch_bytes':0},'sources':[" SRC "]}",
	"segment.max_batch_bytes: must be between 1 and 500000"},
    {"{'segment':{'max_batch_count':2501},'sources':[" SRC "]}",
	"segment.max_batch_count: must be between 1 and 2500"},
    {"{'segment':{'max_message_bytes':32001},'sources':[" SRC "]}",
	"segment.max_message_bytes: must be between 1 and 32000"},
    {"{'segment':{'rate_limit_rps':0},'sources':[" SRC "]}",
	"segment.rate_limit_rps: must be greater than 0"},
    {"{'segment':{'rate_limit_rps':-2.5},'sources':[" SRC "]}",
	"segment.rate_limit_rps: must be greater than 0"},
    {"{'segment':{'rate_limit_rps':'fast'},'sources':[" SRC "]}",
	"segment.rate_limit_rps: must be a number"},
    {"{'segment':{'max_inflight':0},'sources':[" SRC "]}",
	"segment.max_inflight: must be between 1"},
    {"{'segment':{'timeout_ms':0},'sources':[" SRC "]}",
	"segment.timeout_ms: must be between 1"},
    {"{'segment':{'pause_s':0},'sources':[" SRC "]}",
	"segment.pause_s: must be between 1"},
    {"{'segment':{'retention_s':-1},'sources':[" SRC "]}",
	"segment.retention_s: must be between 0"},
    {"{'segment':{'flush_interval_ms':-1},'sources':[" SRC "]}",
	"segment.flush_interval_ms: must be between 0"},
    {"{'segment':{'endpoint':'ftp://x'},'sources':[" SRC "]}",
	"segment.endpoint: must be an http:// or https:// URL"},
    {"{'segment':{'endpoint':'api.segment.io'},'sources':[" SRC "]}",
	"segment.endpoint: must be an http"},
    {"{'segment':{'endpoint':'https://a b'},'sources':[" SRC "]}",
	"segment.endpoint: must be an http"},
    {"{'segment':{'retry':[]},'sources':[" SRC "]}",
	"segment.retry: must be an object"},
    {"{'segment':{'retry':{'initial_ms':1000,'max_ms':999}},"
     "'sources':[" SRC "]}",
	"segment.retry.max_ms: must be at least initial_ms"},
    {"{'segment':{'retry':{'max_attempts':-1}},'sources':[" SRC "]}",
	"segment.retry.max_attempts: must be between 0"},
    {"{'segment':{'retry':{'max_age_s':0}},'sources':[" SRC "]}",
	"segment.retry.max_age_s: must be between 1"},
    {"{'segment':{'retry':{'initial_ms':0}},'sources':[" SRC "]}",
	"segment.retry.initial_ms: must be between 1"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','endpoint':'https://'}]}",
	"sources[0].endpoint: must be an http"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','region':'ap'}]}",
	"sources[0].region: must be one of us, eu"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','anonymous_id':'md5'}]}",
	"sources[0].anonymous_id: must be one of email, sha256"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','event_names':[]}]}",
	"sources[0].event_names: must be an object"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','event_names':{'email.sent':5}}]}",
	"sources[0].event_names[\"email.sent\"]: must be a string"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','event_names':{'email.sent':''}}]}",
	"sources[0].event_names[\"email.sent\"]: must be a string"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','event_names':{'':'X'}}]}",
	"sources[0].event_names[\"\"]: type must be 1..64"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','drop_types':'email.opened'}]}",
	"sources[0].drop_types: must be an array of types"},
    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
     "'write_key':'k','drop_types':['email.opened','']}]}",
	"sources[0].drop_types[1]: must be a Nudgespot type"},
    {"{'sources':[" SRC "],'sources':[" SRC "]}", "duplicate object key"},
    /* Key names are echoed with control characters replaced. */
    {"{'a\\nb':1,'sources':[" SRC "]}", "a?b: unknown key"},
};

static void
test_errors(void **state)
{
	size_t i;

	(void)state;
	unsetenv("NB_TEST_UNSET_VAR");
	for (i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++)
		expect_error(error_cases[i].text, error_cases[i].want);
}

/* Secret values never appear in an error, even around a syntax error. */
static void
test_errors_hide_secrets(void **state)
{
	static const char *const texts[] = {
	    "{'sources':[{'name':'acme','signing_secrets':"
	    "['whsec_TOPSECRETVALUE'],'write_key':'k'}]}",
	    "{'sources':[{'name':'acme','write_key':'TOPSECRETVALUE'"
	    " 'x'}]}",
	    "{'sources':[{'name':'acme','write_key':TOPSECRETVALUE}]}",
	    "{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
	    "'write_key':'TOPSECRETVALUE','region':'TOPSECRETVALUE'}]}",
	    "{'sources':[{'name':'acme','signing_secrets':['" SEC1 "'],"
	    "'write_key':'TOPSECRETVALUE\\nline2'}]}",
	};
	struct nb_config *cfg;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		assert_int_equal(
		    load(&cfg, texts[i], "/", err, sizeof(err)), -1);
		if (strstr(err, "TOPSECRET") != NULL)
			fail_msg("secret leaked: %s", err);
		assert_true(strlen(err) > 0);
	}
	/* A tiny buffer is still NUL-terminated. */
	assert_int_equal(load(&cfg, "{}", "/", err, 5), -1);
	assert_string_equal(err, "sour");
}

static void
test_env_secrets(void **state)
{
	struct nb_config *cfg;
	const struct nb_source *s;
	char err[512];

	(void)state;
	assert_int_equal(setenv("NB_T_WK", "wk_from_env", 1), 0);
	assert_int_equal(setenv("NB_T_SECRETS", SEC1 ", " SEC2 ",", 1), 0);
	assert_int_equal(setenv("NB_T_PKS", PK1 " " PK2, 1), 0);
	assert_int_equal(setenv("NB_T_TOKEN", TOKEN, 1), 0);
	assert_int_equal(setenv("NB_T_DSN", "host=/run/pg dbname=nb", 1), 0);
	assert_int_equal(setenv("NB_T_EMPTY", "", 1), 0);
	assert_int_equal(setenv("NB_T_BAD", SEC1 " whsec_bad", 1), 0);
	cfg = load_ok("{'admin':{'token_env':'NB_T_TOKEN'},"
		      "'store':{'driver':'postgres','dsn_env':'NB_T_DSN'},"
		      "'sources':[{'name':'acme',"
		      "'signing_secrets_env':'NB_T_SECRETS',"
		      "'public_keys_env':'NB_T_PKS',"
		      "'write_key_env':'NB_T_WK'},"
		      "{'name':'mixed','signing_secrets':['" SEC1 "'],"
		      "'signing_secrets_env':'NB_T_SECRETS',"
		      "'write_key':'k'}]}");
	assert_string_equal(cfg->admin_token, TOKEN);
	assert_string_equal(cfg->store.dsn, "host=/run/pg dbname=nb");
	s = nb_config_source(cfg, "acme");
	assert_string_equal(s->write_key, "wk_from_env");
	assert_int_equal(nb_sig_keyring_count(s->keys), 4);
	s = nb_config_source(cfg, "mixed");
	assert_int_equal(nb_sig_keyring_count(s->keys), 3);
	nb_config_unref(cfg);

	assert_int_equal(
	    load(&cfg,
		"{'sources':[{'name':'acme','signing_secrets':['" SEC1
		"'],'write_key_env':'NB_T_EMPTY'}]}",
		"/", err, sizeof(err)),
	    -1);
	assert_string_equal(
	    err, "sources[0].write_key_env: the secret is empty");
	assert_int_equal(
	    load(&cfg,
		"{'sources':[{'name':'acme',"
		"'signing_secrets_env':'NB_T_BAD','write_key':'k'}]}",
		"/", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err,
	    "sources[0].signing_secrets_env: entry 2 "
	    "is not a valid whsec_ secret"));
	assert_int_equal(
	    load(&cfg,
		"{'sources':[{'name':'acme',"
		"'signing_secrets_env':'NB_T_EMPTY','write_key':'k'}]}",
		"/", err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "sources[0]: needs at least one"));
}

static void
test_file_secrets(void **state)
{
	struct nb_config *cfg;
	const struct nb_source *s;
	char err[512], text[2048];

	(void)state;
	write_file("wk.txt", "wk_from_file\n");
	write_file("wk_crlf.txt", "wk_crlf\r\n");
	write_file("wk_nonl.txt", "wk_nonl");
	write_file("empty.txt", "\n");
	write_file("two_lines.txt", "a\nb\n");
	write_file("secrets.txt", "# current\n" SEC1 "\n\n  " SEC2 "  \n");
	write_file("pks.txt", PK1 "\n" PK2);
	write_file("bad.txt", SEC1 "\n# x\nwhsec_???\n");
	write_file("token", TOKEN "\n");

	assert_true(snprintf(text, sizeof(text),
			"{'admin':{'token_file':'%s/token'},'sources':[{"
			"'name':'acme','signing_secrets_file':'secrets.txt',"
			"'public_keys_file':'pks.txt',"
			"'write_key_file':'wk.txt'},"
			"{'name':'b','signing_secrets':['" SEC1 "'],"
			"'write_key_file':'wk_crlf.txt'},"
			"{'name':'c','signing_secrets':['" SEC1 "'],"
			"'write_key_file':'wk_nonl.txt'}]}",
			tmpdir) < (int)sizeof(text));
	assert_int_equal(load(&cfg, text, tmpdir, err, sizeof(err)), 0);
	assert_string_equal(cfg->admin_token, TOKEN);
	s = nb_config_source(cfg, "acme");
	assert_string_equal(s->write_key, "wk_from_file");
	assert_int_equal(nb_sig_keyring_count(s->keys), 4);
	assert_string_equal(nb_config_source(cfg, "b")->write_key, "wk_crlf");
	assert_string_equal(nb_config_source(cfg, "c")->write_key, "wk_nonl");
	nb_config_unref(cfg);

	assert_int_equal(
	    load(&cfg,
		"{'sources':[{'name':'acme','signing_secrets':['" SEC1
		"'],'write_key_file':'empty.txt'}]}",
		tmpdir, err, sizeof(err)),
	    -1);
	assert_string_equal(
	    err, "sources[0].write_key_file: the secret is empty");
	assert_int_equal(
	    load(&cfg,
		"{'sources':[{'name':'acme','signing_secrets':['" SEC1
		"'],'write_key_file':'two_lines.txt'}]}",
		tmpdir, err, sizeof(err)),
	    -1);
	assert_string_equal(err,
	    "sources[0].write_key_file: the secret must "
	    "be one line of text");
	assert_int_equal(
	    load(&cfg,
		"{'sources':[{'name':'acme',"
		"'signing_secrets_file':'bad.txt','write_key':'k'}]}",
		tmpdir, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err,
	    "sources[0].signing_secrets_file: line 3 "
	    "is not a valid whsec_ secret"));
	assert_int_equal(
	    load(&cfg,
		"{'sources':[{'name':'acme','signing_secrets':['" SEC1
		"'],'write_key_file':'.'}]}",
		tmpdir, err, sizeof(err)),
	    -1);
	assert_non_null(strstr(err, "sources[0].write_key_file: cannot read"));
}

static void
test_store_path(void **state)
{
	struct nb_config *cfg = NULL;
	char path[PATH_MAX * 2], want[PATH_MAX * 2], cwd[PATH_MAX], err[512];

	(void)state;
	write_file("nb.json",
	    "{\"store\":{\"path\":\"var/x.db\"},"
	    "\"sources\":[{\"name\":\"acme\","
	    "\"signing_secrets\":[\"" SEC1 "\"],"
	    "\"write_key\":\"wk\"}]}");
	write_file("nb2.json",
	    "{\"sources\":[{\"name\":\"acme\","
	    "\"signing_secrets\":[\"" SEC1 "\"],"
	    "\"write_key\":\"wk\"}]}");
	write_file("bad.json", "{\"sources\":[]}");
	assert_true(snprintf(path, sizeof(path), "%s/nb.json", tmpdir) <
	    (int)sizeof(path));
	if (nb_config_load(&cfg, path, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_string_equal(cfg->path, path);
	snprintf(want, sizeof(want), "%s/var/x.db", tmpdir);
	assert_string_equal(cfg->store.path, want);
	nb_config_unref(cfg);

	snprintf(path, sizeof(path), "%s/nb2.json", tmpdir);
	assert_int_equal(nb_config_load(&cfg, path, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/nudgebridge.db", tmpdir);
	assert_string_equal(cfg->store.path, want);
	nb_config_unref(cfg);

	/* A relative config path is made absolute. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	assert_int_equal(nb_config_load(&cfg, "nb2.json", err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/nb2.json", tmpdir);
	assert_string_equal(cfg->path, want);
	nb_config_unref(cfg);
	/* load_json with a relative or no folder uses the current one. */
	assert_int_equal(load(&cfg, MIN, "sub", err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/sub/nudgebridge.db", tmpdir);
	assert_string_equal(cfg->store.path, want);
	nb_config_unref(cfg);
	assert_int_equal(load(&cfg, MIN, NULL, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s/nudgebridge.db", tmpdir);
	assert_string_equal(cfg->store.path, want);
	nb_config_unref(cfg);
	assert_int_equal(chdir(cwd), 0);

	cfg = load_ok("{'store':{'path':'/var/lib/nb/db.sqlite'},"
		      "'sources':[" SRC "]}");
	assert_string_equal(cfg->store.path, "/var/lib/nb/db.sqlite");
	nb_config_unref(cfg);
	assert_int_equal(
	    load(&cfg, "{'store':{'path':'a.db'},'sources':[" SRC "]}",
		"/srv/nb/", err, sizeof(err)),
	    0);
	assert_string_equal(cfg->store.path, "/srv/nb/a.db");
	nb_config_unref(cfg);

	snprintf(path, sizeof(path), "%s/bad.json", tmpdir);
	assert_int_equal(nb_config_load(&cfg, path, err, sizeof(err)), -1);
	assert_null(cfg);
	assert_string_equal(err, "sources: must list at least one source");
	snprintf(path, sizeof(path), "%s/missing.json", tmpdir);
	assert_int_equal(nb_config_load(&cfg, path, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "missing.json"));
}

static void
test_endpoints(void **state)
{
	static const struct {
		const char *global; /* segment.endpoint, or NULL */
		const char *source; /* extra source keys */
		const char *want;
	} cases[] = {
	    {NULL, "", NB_ENDPOINT_US},
	    {NULL, ",'region':'eu'", NB_ENDPOINT_EU},
	    {NULL, ",'region':'us'", NB_ENDPOINT_US},
	    {"https://g.example", "", "https://g.example"},
	    {"https://g.example/", "", "https://g.example"},
	    {"https://g.example", ",'region':'eu'", NB_ENDPOINT_EU},
	    {"https://g.example", ",'region':'us'", NB_ENDPOINT_US},
	    {"https://g.example",
		",'region':'eu','endpoint':'http://127.0.0.1:1234/'",
		"http://127.0.0.1:1234"},
	    {NULL, ",'endpoint':'http://[::1]:99/seg'", "http://[::1]:99/seg"},
	    {NULL, ",'endpoint':'https://x.example/seg/'",
		"https://x.example/seg"},
	};
	struct nb_config *cfg;
	char text[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(
		    snprintf(text, sizeof(text),
			"{%s%s%s'sources':[{'name':'acme',"
			"'signing_secrets':['" SEC1 "'],"
			"'write_key':'k'%s}]}",
			cases[i].global ? "'segment':{'endpoint':'" : "",
			cases[i].global ? cases[i].global : "",
			cases[i].global ? "'}," : "",
			cases[i].source) < (int)sizeof(text));
		cfg = load_ok(text);
		if (strcmp(cfg->sources[0].endpoint, cases[i].want) != 0)
			fail_msg("case %zu: %s, want %s", i,
			    cfg->sources[0].endpoint, cases[i].want);
		nb_config_unref(cfg);
	}
}

static void
test_event_names(void **state)
{
	static const struct {
		const char *type, *want;
	} cases[] = {
	    {"email.sent", "Email Sent"},
	    {"email.delivered", "Email Delivered"},
	    {"email.opened", "Email Opened"},
	    {"email.clicked", "Email Link Clicked"},
	    {"email.bounced", "Email Bounced"},
	    {"email.spam_reported", "Email Marked as Spam"},
	    {"email.unsubscribed", "Email Unsubscribed"}, /* override */
	    {"email.dropped", "Email Dropped"},
	    {"email.deferred", "Email Deferred"},
	    {"email.replied", "Email Replied"}, /* configured extra */
	    {"sms.sent", "sms.sent"},		/* unknown: itself */
	    {"Email.Sent", "Email.Sent"},	/* case matters */
	};
	struct nb_config *cfg;
	const struct nb_source *s;
	size_t i;

	(void)state;
	cfg = load_ok("{'sources':[{'name':'acme','signing_secrets':['" SEC1
		      "'],'write_key':'k','event_names':{"
		      "'email.unsubscribed':'Email Unsubscribed',"
		      "'email.replied':'Email Replied'}}]}");
	s = nb_config_source(cfg, "acme");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(
		    nb_segment_event_name(&s->mapping, cases[i].type),
		    cases[i].want);
	assert_string_equal(
	    nb_segment_event_name(NULL, "email.unsubscribed"), "Unsubscribed");
	assert_string_equal(
	    nb_segment_event_name(NULL, "email.clicked"), "Email Link Clicked");
	assert_null(nb_segment_event_name(&s->mapping, NULL));
	nb_config_unref(cfg);
}

static void
test_drop_types(void **state)
{
	struct nb_config *cfg;
	const struct nb_source *s;

	(void)state;
	cfg = load_ok("{'sources':[{'name':'acme','signing_secrets':['" SEC1
		      "'],'write_key':'k','drop_types':['email.opened',"
		      "'email.clicked']}," SRC2 "]}");
	s = nb_config_source(cfg, "acme");
	assert_int_equal(s->drop.set, 1);
	assert_int_equal(s->drop.ntypes, 2);
	assert_true(nb_filter_drops(&s->drop, "email.clicked"));
	assert_false(nb_filter_drops(&s->drop, "email.sent"));
	/* Without the key a source drops nothing. */
	s = nb_config_source(cfg, "beta");
	assert_int_equal(s->drop.set, 0);
	assert_false(nb_filter_drops(&s->drop, "email.opened"));
	nb_config_unref(cfg);
}

static void
test_source_names(void **state)
{
	static const struct {
		const char *name;
		int valid;
	} cases[] = {
	    {"acme", 1}, {"a", 1}, {"0", 1}, {"a-b_c9", 1}, {"9-", 1}, {"", 0},
	    {"-a", 0}, {"_a", 0}, {"Acme", 0}, {"a.b", 0}, {"a b", 0},
	    {"a/b", 0}, {"\xc3\xa9", 0},
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		1}, /* 63 */
	    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		0}, /* 64 */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (nb_config_source_name_valid(cases[i].name) !=
		    cases[i].valid)
			fail_msg("name '%s': want %d", cases[i].name,
			    cases[i].valid);
	}
	assert_int_equal(nb_config_source_name_valid(NULL), 0);
}

static void *
ref_worker(void *arg)
{
	struct nb_config *cfg = arg;
	int i;

	for (i = 0; i < 20000; i++)
		nb_config_unref(nb_config_ref(cfg));
	return NULL;
}

/* "alerts" and a source's silent_after_s: defaults, values, errors. */
static void
test_alerts(void **state)
{
	struct nb_config *cfg;

	(void)state;
	cfg = load_ok(MIN);
	assert_null(cfg->alerts.webhook_url);
	assert_null(cfg->alerts.secret);
	assert_int_equal(cfg->alerts.slack, 0);
	assert_int_equal(cfg->alerts.repeat_s, 300);
	assert_int_equal(cfg->alerts.backlog_age_s, 600);
	assert_int_equal(cfg->alerts.store_unavailable_s, 30);
	assert_int_equal(cfg->alerts.interval_ms, 2000);
	assert_int_equal(cfg->alerts.timeout_ms, 10000);
	assert_int_equal(cfg->alerts.retry_initial_ms, 1000);
	assert_int_equal(cfg->alerts.retry_max_ms, 300000);
	assert_int_equal(cfg->alerts.max_age_s, 86400);
	assert_int_equal(cfg->sources[0].silent_after_s, 0);
	nb_config_unref(cfg);

	cfg = load_ok("{'alerts':{'webhook_url':'https://hooks.example/a',"
		      "'secret':'" SEC1 "','format':'slack','repeat_s':60,"
		      "'backlog_age_s':120,'store_unavailable_s':10,"
		      "'interval_ms':500,'timeout_ms':3000,"
		      "'retry_initial_ms':100,'retry_max_ms':9000,"
		      "'max_age_s':3600},"
		      "'sources':[{'name':'acme','signing_secrets':['" SEC1
		      "'],'write_key':'wk','silent_after_s':3600}]}");
	assert_string_equal(cfg->alerts.webhook_url, "https://hooks.example/a");
	assert_string_equal(cfg->alerts.secret, SEC1);
	assert_int_equal(cfg->alerts.slack, 1);
	assert_int_equal(cfg->alerts.repeat_s, 60);
	assert_int_equal(cfg->alerts.backlog_age_s, 120);
	assert_int_equal(cfg->alerts.store_unavailable_s, 10);
	assert_int_equal(cfg->alerts.interval_ms, 500);
	assert_int_equal(cfg->alerts.timeout_ms, 3000);
	assert_int_equal(cfg->alerts.retry_initial_ms, 100);
	assert_int_equal(cfg->alerts.retry_max_ms, 9000);
	assert_int_equal(cfg->alerts.max_age_s, 3600);
	assert_int_equal(cfg->sources[0].silent_after_s, 3600);
	nb_config_unref(cfg);

	expect_error("{'alerts':{'webhook_url':'ftp://x'},"
		     "'sources':[" SRC "]}",
	    "alerts.webhook_url: must be an http(s) URL");
	expect_error("{'alerts':{'secret':'whsec_short'},'sources':[" SRC "]}",
	    "alerts.secret: not a whsec_ secret");
	expect_error("{'alerts':{'format':'teams'},'sources':[" SRC "]}",
	    "alerts.format: must be one of json, slack");
	expect_error("{'alerts':{'repeat_s':0},'sources':[" SRC "]}",
	    "alerts.repeat_s: must be between");
	expect_error("{'alerts':{'bogus':1},'sources':[" SRC "]}",
	    "alerts.bogus: unknown key");
	expect_error("{'sources':[{'name':'acme','signing_secrets':['" SEC1
		     "'],'write_key':'wk','silent_after_s':-1}]}",
	    "sources[0].silent_after_s: must be between");
}

static void
test_refcount(void **state)
{
	struct nb_config *cfg;
	pthread_t t[4];
	size_t i;

	(void)state;
	cfg = load_ok(MIN);
	assert_int_equal(atomic_load(&cfg->refs), 1);
	assert_ptr_equal(nb_config_ref(cfg), cfg);
	assert_int_equal(atomic_load(&cfg->refs), 2);
	for (i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, ref_worker, cfg), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	assert_int_equal(atomic_load(&cfg->refs), 2);
	nb_config_unref(cfg);
	assert_int_equal(atomic_load(&cfg->refs), 1);
	assert_string_equal(cfg->sources[0].name, "acme");
	/* The last unref frees; ASan reports a leak or double free. */
	nb_config_unref(cfg);
	nb_config_unref(NULL);
}

/* A fresh RSA key as PKCS#8 PEM in tmpdir/name. */
static void
write_rsa_key(const char *name, char *pem_out, size_t pem_max)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
	EVP_PKEY *k = NULL;
	BIO *bio;
	char *data;
	long n;

	assert_non_null(ctx);
	assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048), 1);
	assert_int_equal(EVP_PKEY_keygen(ctx, &k), 1);
	assert_non_null(bio = BIO_new(BIO_s_mem()));
	assert_int_equal(
	    PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &data);
	assert_true(n > 0 && (size_t)n < pem_max);
	memcpy(pem_out, data, (size_t)n);
	pem_out[n] = '\0';
	write_file(name, pem_out);
	BIO_free(bio);
	EVP_PKEY_free(k);
	EVP_PKEY_CTX_free(ctx);
}

#define OAUTH(extra)                                                           \
	"{'segment':{'gzip':false},'sources':[{'name':'acme',"                 \
	"'signing_secrets':['" SEC1 "'],'write_key':'wk','oauth':{"            \
	"'client_id':'cid','key_id':'kid'" extra "}}]}"

static void
test_oauth(void **state)
{
	static const struct {
		const char *text, *want;
	} errors[] = {
	    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1
	     "'],'write_key':'wk','oauth':7}]}",
		"sources[0].oauth: must be an object"},
	    {OAUTH(",'bogus':1"), "sources[0].oauth.bogus: unknown key"},
	    {OAUTH(""),
		"sources[0].oauth: needs one of private_key_file and "
		"private_key_env"},
	    {OAUTH(",'private_key_file':'oauth.pem','private_key_env':"
		   "'NB_TEST_OAUTH_PEM'"),
		"needs one of private_key_file and private_key_env"},
	    {"{'sources':[{'name':'acme','signing_secrets':['" SEC1
	     "'],'write_key':'wk','oauth':{'key_id':'k',"
	     "'private_key_file':'oauth.pem'}}]}",
		"sources[0].oauth: needs client_id and key_id"},
	    {OAUTH(",'private_key_file':'not.pem'"),
		"sources[0].oauth.private_key_file: not a PEM private key"},
	    {OAUTH(",'private_key_file':'missing.pem'"),
		"sources[0].oauth.private_key_file: cannot read"},
	    {OAUTH(",'private_key_env':'NB_TEST_UNSET_VAR'"),
		"sources[0].oauth.private_key_env: environment variable"},
	    {OAUTH(",'private_key_file':'oauth.pem','auth_server':'ftp://x'"),
		"sources[0].oauth.auth_server: must be an http:// or "
		"https:// URL"},
	    {"{'segment':{'gzip':1},"
	     "'sources':[" SRC "]}",
		"segment.gzip: must be true or false"},
	};
	static char pem[8192];
	struct nb_config *cfg;
	const struct nb_source *s;
	char err[512];
	size_t i;

	(void)state;
	write_rsa_key("oauth.pem", pem, sizeof(pem));
	write_file("not.pem", "TOPSECRETVALUE\n");
	unsetenv("NB_TEST_UNSET_VAR");
	assert_int_equal(setenv("NB_TEST_OAUTH_PEM", pem, 1), 0);
	for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		assert_int_equal(
		    load(&cfg, errors[i].text, tmpdir, err, sizeof(err)), -1);
		if (strstr(err, errors[i].want) == NULL)
			fail_msg("case %zu: '%s' lacks '%s'", i, err,
			    errors[i].want);
		assert_null(strstr(err, "TOPSECRET"));
		assert_null(strstr(err, "PRIVATE KEY"));
	}
	/* A file, the default US server, gzip off. */
	assert_int_equal(load(&cfg, OAUTH(",'private_key_file':'oauth.pem'"),
			     tmpdir, err, sizeof(err)),
	    0);
	s = nb_config_source(cfg, "acme");
	assert_int_equal(cfg->segment.gzip, 0);
	assert_non_null(s->oauth.key);
	assert_string_equal(s->oauth.client_id, "cid");
	assert_string_equal(s->oauth.key_id, "kid");
	assert_string_equal(s->oauth.auth_server, NB_OAUTH_SERVER_US);
	nb_config_unref(cfg);
	/* The environment; the EU server by region or by endpoint. */
	assert_int_equal(
	    load(&cfg,
		"{'segment':{'endpoint':'" NB_ENDPOINT_EU "'},'sources':["
		"{'name':'a','signing_secrets':['" SEC1 "'],'write_key':'w',"
		"'oauth':{'client_id':'c','key_id':'k','private_key_env':"
		"'NB_TEST_OAUTH_PEM'}},"
		"{'name':'b','signing_secrets':['" SEC1 "'],'write_key':'w',"
		"'region':'eu','oauth':{'client_id':'c','key_id':'k',"
		"'private_key_file':'oauth.pem'}},"
		"{'name':'c','signing_secrets':['" SEC1 "'],'write_key':'w',"
		"'region':'us','oauth':{'client_id':'c','key_id':'k',"
		"'private_key_file':'oauth.pem','auth_server':"
		"'http://127.0.0.1:1/'}},"
		"{'name':'d','signing_secrets':['" SEC1 "'],'write_key':'w'}]}",
		tmpdir, err, sizeof(err)),
	    0);
	assert_int_equal(cfg->segment.gzip, 1);
	assert_string_equal(
	    nb_config_source(cfg, "a")->oauth.auth_server, NB_OAUTH_SERVER_EU);
	assert_string_equal(
	    nb_config_source(cfg, "b")->oauth.auth_server, NB_OAUTH_SERVER_EU);
	assert_string_equal(nb_config_source(cfg, "c")->oauth.auth_server,
	    "http://127.0.0.1:1");
	assert_null(nb_config_source(cfg, "d")->oauth.key);
	assert_true(nb_oauth_config_same(&nb_config_source(cfg, "a")->oauth,
	    &nb_config_source(cfg, "b")->oauth));
	nb_config_unref(cfg);
	unsetenv("NB_TEST_OAUTH_PEM");
	sodium_memzero(pem, sizeof(pem));
}

static int
setup(void **state)
{
	(void)state;
	if (sodium_init() < 0)
		return -1;
	if (snprintf(tmpdir, sizeof(tmpdir), "/tmp/nb-test-config-XXXXXX") >=
	    (int)sizeof(tmpdir))
		return -1;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	/* The config folder is realpath()'d, so compare against that too. */
	{
		char *real = realpath(tmpdir, NULL);

		if (real == NULL)
			return -1;
		snprintf(tmpdir, sizeof(tmpdir), "%s", real);
		free(real);
	}
	return 0;
}

static int
teardown(void **state)
{
	char cmd[PATH_MAX + 16];

	(void)state;
	if (snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir) <
	    (int)sizeof(cmd))
		return system(cmd) == 0 ? 0 : -1;
	return -1;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_errors_hide_secrets),
	    cmocka_unit_test(test_env_secrets),
	    cmocka_unit_test(test_file_secrets),
	    cmocka_unit_test(test_store_path),
	    cmocka_unit_test(test_endpoints),
	    cmocka_unit_test(test_event_names),
	    cmocka_unit_test(test_drop_types),
	    cmocka_unit_test(test_source_names),
	    cmocka_unit_test(test_alerts),
	    cmocka_unit_test(test_refcount),
	    cmocka_unit_test(test_oauth),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
