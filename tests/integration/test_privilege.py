# SPDX-License-Identifier: ISC
"""Dropping root (docs/security.md, "Privileges").

Started as root with `user` set, the bridge binds its listeners, opens its
store, gives the store's own folder to the account and becomes it for good:
/proc/PID/status shows that account as real, effective, saved and
filesystem uid, and webhooks are still stored.  A store folder shared with
other files is not given away: the bridge refuses to start and says why.
Without `user`, a bridge running as root warns.  These tests need root (CI
runs as root) and useradd; they skip themselves otherwise.
"""

import os
import pwd
import re
import shutil
import subprocess
import unittest

from harness import BridgeCase, event

USER = "nbtest-user"


def ensure_user():
    """The uid/gid of USER, created with useradd when missing, or None."""
    try:
        pw = pwd.getpwnam(USER)
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        return None
    r = subprocess.run([useradd, "--system", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", USER],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        return None
    pw = pwd.getpwnam(USER)
    return pw.pw_uid, pw.pw_gid


def proc_ids(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return [int(x) for x in line.split()[1:]]
    return None


@unittest.skipUnless(os.geteuid() == 0, "needs root to drop privileges")
class TestPrivilegeDrop(BridgeCase):

    START = False

    def setUp(self):
        super().setUp()
        ids = ensure_user()
        if ids is None:
            self.skipTest("cannot create the %s account (useradd)" % USER)
        self.uid, self.gid = ids

    def bridge_as_user(self, store_path):
        b = self.make_bridge(start=False,
                             config={"user": USER,
                                     "store": {"path": store_path}})
        # The account must be able to reach the store and read the config.
        os.chmod(b.dir, 0o755)
        return b

    def test_drops_to_user_and_keeps_the_store_writable(self):
        b = self.bridge_as_user("state/nb.db")
        state = os.path.join(b.dir, "state")
        os.mkdir(state, 0o700)  # root's, as a fresh install would have it
        b.start()
        for field in ("Uid", "Gid"):
            want = self.uid if field == "Uid" else self.gid
            self.assertEqual(proc_ids(b.proc.pid, field), [want] * 4,
                             "%s line of /proc/%d/status" %
                             (field, b.proc.pid))
        groups = proc_ids(b.proc.pid, "Groups")
        self.assertNotIn(0, groups or [])
        self.assertRegex(b.log(), r"msg=\"dropped root\" user=%s" % USER)
        self.assertNotIn("running as root", b.log())
        # The committer and the deliverer dropped too, and can still write.
        self.assertCounts(b.post("acme", [event(), event()]), 2, 0, 0)
        self.assertCounts(b.post("acme", [event()]), 1, 0, 0)
        self.assertEqual(os.stat(state).st_uid, self.uid)
        self.assertEqual(os.stat(os.path.join(state, "nb.db")).st_uid,
                         self.uid)
        # A reload runs as the account and still works.
        b.hup()
        self.assertTrue(b.wait_log(r"msg=\"config reloaded\""), b.log())
        self.assertCounts(b.post("acme", [event()]), 1, 0, 0)
        self.assertEqual(b.terminate(), 0)

    def test_shared_store_folder_is_not_given_away(self):
        # The store sits next to the config: a folder with other files.
        b = self.bridge_as_user("nb.db")
        b.start(wait=False)
        try:
            rc = b.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.fail("started although the store folder is not writable")
        self.assertNotEqual(rc, 0)
        self.assertRegex(b.log(), r"store\.path: the folder .* not writable "
                         r"by user %s" % USER)
        self.assertEqual(os.stat(b.dir).st_uid, 0)

    def test_warns_when_running_as_root_without_user(self):
        b = self.make_bridge()
        self.assertTrue(b.wait_log(r"running as root; set user"), b.log())
        self.assertEqual(proc_ids(b.proc.pid, "Uid"), [0] * 4)

    def test_unknown_user_is_a_config_error(self):
        b = self.make_bridge(start=False,
                             config={"user": "nb-no-such-user-xyz"})
        r = b.cli("check-config", "--config", b.config_path)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, re.escape("user: no such account"))


if __name__ == "__main__":
    unittest.main()
