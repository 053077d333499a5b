/* SPDX-License-Identifier: ISC */
/*
 * priv: dropping root and raising the descriptor limit at start-up.
 *
 * The drop is all or nothing: a bridge that was told to run as an account
 * and cannot become it exits instead of serving as root.  The store must
 * stay writable after the drop, so the database and its -wal, -shm and
 * -journal companions are given to the account first, opened with
 * O_NOFOLLOW so a link planted in their place is refused.  The folder is
 * given away only when it holds nothing but those files (a folder of the
 * store's own, such as /var/lib/nudgebridge): the bridge never chowns /tmp
 * or a folder shared with anything else, it explains instead.  Main thread,
 * start-up only.
 */
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nudgebridge/log.h"
#include "nudgebridge/priv.h"

#define NOFILE_CEILING ((rlim_t)1 << 20) /* Linux's default nr_open */
#define PW_BUF_MAX     16384

static const char *const store_suffixes[] = {"", "-wal", "-shm", "-journal"};
#define NSUFFIXES (sizeof(store_suffixes) / sizeof(store_suffixes[0]))

int
nb_priv_raise_nofile(size_t *out)
{
	struct rlimit rl;
	rlim_t want;

	*out = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	*out = (size_t)rl.rlim_cur;
	want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > NOFILE_CEILING
	    ? NOFILE_CEILING
	    : rl.rlim_max;
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
		return 0;
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		return -1;
	*out = (size_t)want;
	return 0;
}

/* Gives one existing store file to uid:gid.  0 (also when absent) or -1. */
static int
give_file(const char *path, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	int fd;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1 && errno == ENOENT)
		return 0;
	if (fd == -1) {
		snprintf(err, errlen, "store.path: cannot open %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fchown(fd, uid, gid) == -1) {
		snprintf(err, errlen, "store.path: cannot chown %s: %s", path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* 1 when the folder holds nothing but base and its companions. */
static int
store_only(const char *dir, const char *base)
{
	char name[NAME_MAX + 1];
	struct dirent *de;
	DIR *d;
	size_t i;
	int ok = 1, r;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while (ok && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		ok = 0;
		for (i = 0; i < NSUFFIXES; i++) {
			r = snprintf(name, sizeof(name), "%s%s", base,
			    store_suffixes[i]);
			if (r > 0 && (size_t)r < sizeof(name) &&
			    strcmp(de->d_name, name) == 0)
				ok = 1;
		}
	}
	closedir(d);
	return ok;
}

static int
give_store(const char *user, const char *path, uid_t uid, gid_t gid, char *err,
    size_t errlen)
{
	char file[PATH_MAX], dir[PATH_MAX];
	const char *base, *slash;
	struct stat st;
	size_t i;
	int r, fd;

	if (strcmp(path, ":memory:") == 0)
		return 0;
	for (i = 0; i < NSUFFIXES; i++) {
		r = snprintf(
		    file, sizeof(file), "%s%s", path, store_suffixes[i]);
		if (r < 0 || (size_t)r >= sizeof(file)) {
			snprintf(err, errlen, "store.path: too long");
			return -1;
		}
		if (give_file(file, uid, gid, err, errlen) == -1)
			return -1;
	}
	if ((slash = strrchr(path, '/')) == NULL)
		return 0;
	base = slash + 1;
	r = snprintf(dir, sizeof(dir), "%.*s",
	    slash == path ? 1 : (int)(slash - path), path);
	if (r < 0 || (size_t)r >= sizeof(dir)) {
		snprintf(err, errlen, "store.path: too long");
		return -1;
	}
	if (stat(dir, &st) == -1) {
		snprintf(err, errlen, "store.path: cannot stat %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	/* SQLite creates and deletes its -wal, -shm and -journal here. */
	if ((st.st_uid == uid && (st.st_mode & S_IWUSR)) ||
	    (st.st_gid == gid && (st.st_mode & S_IWGRP)) ||
	    (st.st_mode & S_IWOTH))
		return 0;
	if (!store_only(dir, base)) {
		snprintf(err, errlen,
		    "store.path: the folder %s is not writable by user %s and "
		    "holds other files; give it to %s or use a folder of the "
		    "store's own",
		    dir, user, user);
		return -1;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) ==
	    -1) {
		snprintf(err, errlen, "store.path: cannot open %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (fchown(fd, uid, gid) == -1) {
		snprintf(err, errlen, "store.path: cannot chown %s: %s", dir,
		    strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	log_info(
	    "gave the store folder to the service account", " user=%s", user);
	return 0;
}

int
nb_priv_drop(const char *user, const char *store_path, char *err, size_t errlen)
{
	struct passwd pw, *res = NULL;
	char *buf = NULL;
	uid_t euid = geteuid();
	int r, rc = -1;

	if (user == NULL) {
		if (euid == 0)
			log_warn("running as root; set user", NULL);
		return 0;
	}
	if ((buf = malloc(PW_BUF_MAX)) == NULL) {
		snprintf(err, errlen, "user: out of memory");
		return -1;
	}
	r = getpwnam_r(user, &pw, buf, PW_BUF_MAX, &res);
	if (r != 0 || res == NULL) {
		snprintf(err, errlen, "user: no account named %s%s%s", user,
		    r != 0 ? ": " : "", r != 0 ? strerror(r) : "");
		goto out;
	}
	if (euid != 0) {
		if (euid != pw.pw_uid)
			log_warn("not running as the configured user",
			    " user=%s uid=%ld configured_uid=%ld", user,
			    (long)euid, (long)pw.pw_uid);
		rc = 0;
		goto out;
	}
	if (store_path != NULL &&
	    give_store(user, store_path, pw.pw_uid, pw.pw_gid, err, errlen) ==
		-1)
		goto out;
	if (initgroups(user, pw.pw_gid) == -1) {
		snprintf(err, errlen, "user: initgroups: %s", strerror(errno));
		goto out;
	}
	if (setgid(pw.pw_gid) == -1) {
		snprintf(err, errlen, "user: setgid: %s", strerror(errno));
		goto out;
	}
	if (setuid(pw.pw_uid) == -1) {
		snprintf(err, errlen, "user: setuid: %s", strerror(errno));
		goto out;
	}
	if (getuid() != pw.pw_uid || geteuid() != pw.pw_uid ||
	    getgid() != pw.pw_gid || getegid() != pw.pw_gid) {
		snprintf(
		    err, errlen, "user: the switch to %s did not hold", user);
		goto out;
	}
	if (setuid(0) != -1) {
		snprintf(err, errlen, "user: root could be regained");
		goto out;
	}
	log_info("dropped root", " user=%s uid=%ld gid=%ld", user,
	    (long)pw.pw_uid, (long)pw.pw_gid);
	rc = 0;
out:
	free(buf);
	return rc;
}
