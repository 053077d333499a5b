/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for source: fingerprints, add/rotate/retire on a JSON
 * document, the list never showing a key, and the atomic save that
 * validates before it replaces the file.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/sig.h"
#include "nudgebridge/source.h"
#include "nudgebridge/source_keys.h"
#include "testlib.h"

static const char base_doc[] =
    "{\"listen\": \"127.0.0.1:8080\", \"store\": {\"path\": \"nb.db\"},"
    " \"sources\": [{\"name\": \"acme\", \"signing_secrets\":"
    " [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], \"write_key\": \"wk\"}]}";

static json_t *
doc_new(void)
{
	json_t *doc = json_loads(base_doc, 0, NULL);

	assert_non_null(doc);
	return doc;
}

static void
test_fingerprint(void **state)
{
	static const struct {
		const char *in;
		const char *fp;
	} vec[] = {
	    {"abc", "ba7816bf"},
	    {"", "e3b0c442"},
	    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", NULL},
	};
	char fp[NB_SOURCE_FP_LEN], again[NB_SOURCE_FP_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		nb_source_fingerprint(vec[i].in, fp);
		assert_int_equal(strlen(fp), 8);
		if (vec[i].fp != NULL)
			assert_string_equal(fp, vec[i].fp);
		nb_source_fingerprint(vec[i].in, again);
		assert_string_equal(fp, again);
	}
}

/* The secret verifies a signature made with it. */
static void
assert_secret_works(const char *secret)
{
	struct nb_keyring *kr = nb_sig_keyring_new();
	struct nb_sig_headers h;
	char sig[NB_SIG_ENTRY_MAX], ts[32];
	time_t now = time(NULL);

	assert_non_null(kr);
	assert_int_equal(nb_sig_keyring_add_secret(kr, secret), 0);
	assert_int_equal(nb_sig_sign_hmac(secret, "msg_1", (int64_t)now,
			     (const unsigned char *)"{}", 2, sig, sizeof(sig)),
	    0);
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	h.id = "msg_1";
	h.timestamp = ts;
	h.signature = sig;
	assert_int_equal(
	    nb_sig_verify(kr, &h, (const unsigned char *)"{}", 2, now, 300),
	    NB_SIG_OK);
	nb_sig_keyring_free(kr);
}

static void
test_add(void **state)
{
	struct nb_source_new s = {.name = "beta",
	    .write_key_env = "BETA_WK",
	    .region = "eu",
	    .ed25519 = 0};
	char key[NB_SOURCE_KEY_MAX], err[256];
	json_t *doc = doc_new(), *src;

	(void)state;
	assert_int_equal(
	    nb_source_add(doc, &s, key, sizeof(key), err, sizeof(err)), 0);
	assert_true(strncmp(key, "whsec_", 6) == 0);
	src = json_array_get(json_object_get(doc, "sources"), 1);
	assert_string_equal(
	    json_string_value(json_object_get(src, "name")), "beta");
	assert_string_equal(json_string_value(json_array_get(
				json_object_get(src, "signing_secrets"), 0)),
	    key);
	assert_string_equal(
	    json_string_value(json_object_get(src, "write_key_env")),
	    "BETA_WK");
	assert_string_equal(
	    json_string_value(json_object_get(src, "region")), "eu");
	assert_null(json_object_get(src, "public_keys"));
	assert_secret_works(key);
	json_decref(doc);
}

static void
test_add_ed25519(void **state)
{
	struct nb_source_new s = {.name = "gamma",
	    .write_key_env = "G_WK",
	    .region = NULL,
	    .ed25519 = 1};
	struct nb_keyring *kr;
	struct nb_sig_headers h;
	char key[NB_SOURCE_KEY_MAX], err[256], sig[NB_SIG_ENTRY_MAX];
	char ts[32];
	json_t *doc = doc_new(), *src;
	const char *pk;
	char *text;
	time_t now = time(NULL);

	(void)state;
	assert_int_equal(
	    nb_source_add(doc, &s, key, sizeof(key), err, sizeof(err)), 0);
	assert_true(strncmp(key, "whsk_", 5) == 0);
	src = json_array_get(json_object_get(doc, "sources"), 1);
	assert_null(json_object_get(src, "signing_secrets"));
	assert_null(json_object_get(src, "region"));
	pk = json_string_value(
	    json_array_get(json_object_get(src, "public_keys"), 0));
	assert_non_null(pk);
	assert_true(strncmp(pk, "whpk_", 5) == 0);
	/* The private key printed signs what the stored public key checks. */
	assert_non_null(kr = nb_sig_keyring_new());
	assert_int_equal(nb_sig_keyring_add_public_key(kr, pk), 0);
	assert_int_equal(nb_sig_sign_ed25519(key, "msg_2", (int64_t)now,
			     (const unsigned char *)"[]", 2, sig, sizeof(sig)),
	    0);
	snprintf(ts, sizeof(ts), "%lld", (long long)now);
	h.id = "msg_2";
	h.timestamp = ts;
	h.signature = sig;
	assert_int_equal(
	    nb_sig_verify(kr, &h, (const unsigned char *)"[]", 2, now, 300),
	    NB_SIG_OK);
	/* No private key in the document. */
	text = json_dumps(doc, 0);
	assert_non_null(text);
	assert_null(strstr(text, "whsk_"));
	free(text);
	nb_sig_keyring_free(kr);
	json_decref(doc);
}

static void
test_add_refused(void **state)
{
	static const struct nb_source_new bad[] = {
	    {.name = "acme",
		.write_key_env = "X",
		.region = NULL,
		.ed25519 = 0}, /* exists */
	    {.name = "Acme",
		.write_key_env = "X",
		.region = NULL,
		.ed25519 = 0}, /* name */
	    {.name = "",
		.write_key_env = "X",
		.region = NULL,
		.ed25519 = 0}, /* name */
	    {.name = "ok",
		.write_key_env = "",
		.region = NULL,
		.ed25519 = 0}, /* variable */
	    {.name = "ok",
		.write_key_env = "1X",
		.region = NULL,
		.ed25519 = 0}, /* variable */
	    {.name = "ok",
		.write_key_env = "A-B",
		.region = NULL,
		.ed25519 = 0}, /* variable */
	    {.name = "ok",
		.write_key_env = "X",
		.region = "mars",
		.ed25519 = 0}, /* region */
	};
	char key[NB_SOURCE_KEY_MAX], err[256];
	json_t *doc = doc_new();
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(nb_source_add(doc, &bad[i], key, sizeof(key),
				     err, sizeof(err)),
		    -1);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(json_array_size(json_object_get(doc, "sources")), 1);
	json_decref(doc);
}

static void
test_add_oauth(void **state)
{
	struct nb_source_new s = {.name = "beta",
	    .write_key_env = "BETA_WK",
	    .oauth_client_id = "cid",
	    .oauth_key_id = "kid",
	    .oauth_key_file = "segment.pem"};
	static const struct nb_source_new bad[] = {
	    {.name = "x", .write_key_env = "X", .oauth_client_id = "c"},
	    {.name = "x",
		.write_key_env = "X",
		.oauth_client_id = "c",
		.oauth_key_id = "k"},
	    {.name = "x",
		.write_key_env = "X",
		.oauth_client_id = "c",
		.oauth_key_id = "k",
		.oauth_key_file = "f",
		.oauth_key_env = "E"},
	    {.name = "x",
		.write_key_env = "X",
		.oauth_client_id = "c",
		.oauth_key_id = "k",
		.oauth_key_env = "1E"},
	    {.name = "x", .write_key_env = "X", .oauth_auth_server = "u"},
	};
	char key[NB_SOURCE_KEY_MAX], err[256];
	json_t *doc = doc_new(), *o;
	size_t i;

	(void)state;
	assert_int_equal(
	    nb_source_add(doc, &s, key, sizeof(key), err, sizeof(err)), 0);
	o = json_object_get(
	    json_array_get(json_object_get(doc, "sources"), 1), "oauth");
	assert_non_null(o);
	assert_string_equal(
	    json_string_value(json_object_get(o, "client_id")), "cid");
	assert_string_equal(
	    json_string_value(json_object_get(o, "key_id")), "kid");
	assert_string_equal(
	    json_string_value(json_object_get(o, "private_key_file")),
	    "segment.pem");
	assert_null(json_object_get(o, "private_key_env"));
	assert_null(json_object_get(o, "auth_server"));
	s.name = "gamma";
	s.oauth_key_file = NULL;
	s.oauth_key_env = "G_KEY";
	s.oauth_auth_server = "https://oauth2.eu1.segmentapis.com";
	assert_int_equal(
	    nb_source_add(doc, &s, key, sizeof(key), err, sizeof(err)), 0);
	o = json_object_get(
	    json_array_get(json_object_get(doc, "sources"), 2), "oauth");
	assert_string_equal(
	    json_string_value(json_object_get(o, "private_key_env")), "G_KEY");
	assert_string_equal(
	    json_string_value(json_object_get(o, "auth_server")),
	    "https://oauth2.eu1.segmentapis.com");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(nb_source_add(doc, &bad[i], key, sizeof(key),
				     err, sizeof(err)),
		    -1);
		assert_non_null(strstr(err, "oauth"));
	}
	assert_int_equal(json_array_size(json_object_get(doc, "sources")), 3);
	sodium_memzero(key, sizeof(key));
	json_decref(doc);
}

static char *
list_text(const json_t *doc)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	nb_source_list(f, doc);
	fclose(f);
	return buf;
}

static void
test_rotate_retire(void **state)
{
	char key[NB_SOURCE_KEY_MAX], old[NB_SOURCE_KEY_MAX], err[256];
	char fp[NB_SOURCE_FP_LEN], fpold[NB_SOURCE_FP_LEN];
	json_t *doc = doc_new(), *secrets;
	char *text;
	int id = -1;

	(void)state;
	secrets =
	    json_object_get(json_array_get(json_object_get(doc, "sources"), 0),
		"signing_secrets");
	snprintf(old, sizeof(old), "%s",
	    json_string_value(json_array_get(secrets, 0)));
	/* The last key cannot go. */
	assert_int_equal(
	    nb_source_retire(doc, "acme", "0", err, sizeof(err)), -1);
	assert_int_equal(nb_source_rotate(doc, "acme", 0, key, sizeof(key), &id,
			     err, sizeof(err)),
	    0);
	assert_int_equal(id, 1);
	assert_int_equal(json_array_size(secrets), 2);
	assert_string_equal(json_string_value(json_array_get(secrets, 0)), old);
	assert_string_equal(json_string_value(json_array_get(secrets, 1)), key);
	assert_int_equal(nb_source_rotate(doc, "nope", 0, key, sizeof(key), &id,
			     err, sizeof(err)),
	    -1);

	/* list: ids and fingerprints, never a key. */
	nb_source_fingerprint(old, fpold);
	nb_source_fingerprint(
	    json_string_value(json_array_get(secrets, 1)), fp);
	text = list_text(doc);
	assert_non_null(strstr(text, fpold));
	assert_non_null(strstr(text, fp));
	assert_null(strstr(text, "whsec_"));
	free(text);

	/* Unknown ids, bad ids. */
	assert_int_equal(
	    nb_source_retire(doc, "acme", "7", err, sizeof(err)), -1);
	assert_int_equal(
	    nb_source_retire(doc, "acme", "zz", err, sizeof(err)), -1);
	assert_int_equal(
	    nb_source_retire(doc, "acme", "00000000", err, sizeof(err)), -1);
	assert_int_equal(
	    nb_source_retire(doc, "nope", "0", err, sizeof(err)), -1);
	/* By fingerprint prefix: the old one goes, the new one stays. */
	fpold[6] = '\0';
	assert_int_equal(
	    nb_source_retire(doc, "acme", fpold, err, sizeof(err)), 0);
	assert_int_equal(json_array_size(secrets), 1);
	assert_string_equal(json_string_value(json_array_get(secrets, 0)), key);
	/* By number, after another rotation. */
	assert_int_equal(nb_source_rotate(doc, "acme", 1, key, sizeof(key), &id,
			     err, sizeof(err)),
	    0);
	assert_int_equal(id, 1); /* secrets first, then public keys */
	assert_int_equal(
	    nb_source_retire(doc, "acme", "0", err, sizeof(err)), 0);
	assert_null(
	    json_object_get(json_array_get(json_object_get(doc, "sources"), 0),
		"signing_secrets"));
	assert_int_equal(json_array_size(json_object_get(
			     json_array_get(json_object_get(doc, "sources"), 0),
			     "public_keys")),
	    1);
	json_decref(doc);
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void
test_save(void **state)
{
	struct nb_source_new s = {.name = "beta",
	    .write_key_env = "NB_TEST_SOURCE_WK",
	    .region = NULL,
	    .ed25519 = 0};
	struct nb_config *cfg = NULL;
	struct stat st;
	char dir[] = "/tmp/nb-test-source-XXXXXX";
	char path[256], key[NB_SOURCE_KEY_MAX], err[512];
	json_t *doc = doc_new(), *bad;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/nudgebridge.json", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(base_doc, f);
	fclose(f);
	assert_int_equal(chmod(path, 0640), 0);

	/* A missing write-key variable: refused, file unchanged. */
	unsetenv("NB_TEST_SOURCE_WK");
	assert_int_equal(
	    nb_source_add(doc, &s, key, sizeof(key), err, sizeof(err)), 0);
	assert_int_equal(nb_source_save(path, doc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "NB_TEST_SOURCE_WK"));
	assert_null(strstr(err, key));
	assert_int_equal(count_files(dir), 1);

	setenv("NB_TEST_SOURCE_WK", "wk_beta", 1);
	assert_int_equal(nb_source_save(path, doc, err, sizeof(err)), 0);
	assert_int_equal(count_files(dir), 1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	assert_int_equal(nb_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg->nsources, 2);
	assert_non_null(nb_config_source(cfg, "beta"));
	assert_string_equal(
	    nb_config_source(cfg, "beta")->write_key, "wk_beta");
	nb_config_unref(cfg);

	/* An invalid document never replaces the file. */
	bad = json_deep_copy(doc);
	json_object_set_new(bad, "listen", json_integer(5));
	assert_int_equal(nb_source_save(path, bad, err, sizeof(err)), -1);
	assert_int_equal(count_files(dir), 1);
	assert_int_equal(nb_config_load(&cfg, path, err, sizeof(err)), 0);
	assert_int_equal(cfg->nsources, 2);
	nb_config_unref(cfg);
	json_decref(bad);

	sodium_memzero(key, sizeof(key));
	unlink(path);
	rmdir(dir);
	unsetenv("NB_TEST_SOURCE_WK");
	json_decref(doc);
}

/* Through a symlink: the link stays, the target changes, under a lock. */
static void
test_edit_through_link(void **state)
{
	struct nb_source_edit e;
	char dir[64], real[128], link[128], err[512];
	json_t *doc = NULL;
	struct stat st;
	FILE *f;
	int fd;

	(void)state;
	testlib_tmpdir(dir, sizeof(dir), "source-link");
	snprintf(real, sizeof(real), "%s/real.json", dir);
	snprintf(link, sizeof(link), "%s/link.json", dir);
	assert_non_null(f = fopen(real, "w"));
	fputs(base_doc, f);
	fclose(f);
	assert_int_equal(symlink("real.json", link), 0);
	assert_int_equal(
	    nb_source_edit_begin(&e, link, &doc, err, sizeof(err)), 0);
	assert_string_equal(e.target, real);
	/* Another edit waits: the target is locked. */
	assert_true((fd = open(real, O_RDONLY)) != -1);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	json_object_set_new(doc, "listen", json_string("127.0.0.1:9999"));
	assert_int_equal(nb_source_save(link, doc, err, sizeof(err)), 0);
	nb_source_edit_end(&e);
	nb_source_edit_end(&e);
	assert_int_equal(lstat(link, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	json_decref(doc);
	/* The next edit reads what the last one wrote. */
	assert_int_equal(
	    nb_source_edit_begin(&e, link, &doc, err, sizeof(err)), 0);
	assert_string_equal("127.0.0.1:9999",
	    json_string_value(json_object_get(doc, "listen")));
	nb_source_edit_end(&e);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	json_decref(doc);
	/* A missing file is named, and nothing is held. */
	unlink(real);
	assert_int_equal(
	    nb_source_edit_begin(&e, link, &doc, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "link.json"));
	assert_null(doc);
	assert_int_equal(e.fd, -1);
	unlink(link);
	rmdir(dir);
}

/*
 * When the store cannot say when a key was last used, retire refuses
 * unless forced ("unknown" is not "unused"), and list says "unknown".
 */
static void
test_unknown_use(void **state)
{
	json_t *doc = doc_new();
	char *buf = NULL;
	size_t len = 0;
	FILE *f, *warn;

	(void)state;
	assert_non_null(f = fopen("/dev/null", "w"));
	assert_int_equal(nb_source_retire_check(f, "/nonexistent/nb.json", doc,
			     "acme", "0", "0a1b2c3d", 0),
	    -1);
	assert_int_equal(nb_source_retire_check(f, "/nonexistent/nb.json", doc,
			     "acme", "0", "0a1b2c3d", 1),
	    0);
	assert_non_null(warn = open_memstream(&buf, &len));
	nb_source_list_used(f, warn, "/nonexistent/nb.json", doc);
	fclose(warn);
	assert_non_null(strstr(buf, "last uses unknown"));
	free(buf);
	fclose(f);
	json_decref(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fingerprint),
	    cmocka_unit_test(test_add),
	    cmocka_unit_test(test_add_ed25519),
	    cmocka_unit_test(test_add_refused),
	    cmocka_unit_test(test_add_oauth),
	    cmocka_unit_test(test_rotate_retire),
	    cmocka_unit_test(test_save),
	    cmocka_unit_test(test_edit_through_link),
	    cmocka_unit_test(test_unknown_use),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
