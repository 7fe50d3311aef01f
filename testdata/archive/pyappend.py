#!/usr/bin/env python3
# pyappend.py MBOX TAG N [MODE] - append N messages to MBOX as a
# third-party writer would. Message I has the header "Subject: TAG-I" and
# a body that names it on each line, one of them a "From " line, quoted
# as ">From ". MODE says which locks the writer takes:
#
#   mailbox  Python's mailbox module (the default): fcntl.lockf, then a
#            dot-lock, neither waited for; when another process holds
#            one, the append is tried again with the mailbox opened
#            afresh.
#   fcntl    an fcntl (lockf) lock only, waited for, like a program
#            configured for kernel locks alone.
#   dotlock  a dot-lock only (MBOX.lock, made by link(2) as liblockfile
#            does), like dotlockfile(1) and cat, or Dovecot with
#            mbox_write_locks = dotlock.
#
# In the fcntl and dotlock modes the record is written in small pieces
# with pauses, so that a writer that ignored the lock would interleave,
# and the appends are spread out in time.
import fcntl
import mailbox
import os
import sys
import time

path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
mode = sys.argv[4] if len(sys.argv) > 4 else "mailbox"


def text(i):
    return "Subject: %s-%d\n\nbody of %s %d\nFrom inside %s %d\nend\n" % (tag, i, tag, i, tag, i)


def append_pieces(fd, i):
    record = ("From py@example.org Thu Jan  1 00:00:00 1970\n" +
              text(i).replace("\nFrom ", "\n>From ") + "\n").encode()
    for k in range(0, len(record), 8):
        os.write(fd, record[k:k + 8])
        time.sleep(0.001)
    os.fsync(fd)


def with_mailbox(i):
    msg = mailbox.mboxMessage(text(i))
    msg.set_from("py@example.org", time.gmtime(0))
    deadline = time.monotonic() + 60
    while True:
        box = mailbox.mbox(path)
        try:
            box.lock()
        except mailbox.ExternalClashError:
            box.close()
            if time.monotonic() > deadline:
                sys.exit("%s-%d: no lock within 60 s" % (tag, i))
            time.sleep(0.002)
            continue
        try:
            box.add(msg)
            box.flush()
        finally:
            box.unlock()
            box.close()
        return


def with_fcntl(i):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        try:
            append_pieces(fd, i)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def with_dotlock(i):
    lock = path + ".lock"
    tmp = "%s.py%d" % (lock, os.getpid())
    deadline = time.monotonic() + 60
    while True:
        with open(tmp, "w") as f:
            f.write("%d\n" % os.getpid())
        try:
            os.link(tmp, lock)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                sys.exit("%s-%d: no dot-lock within 60 s" % (tag, i))
            time.sleep(0.002)
        finally:
            os.unlink(tmp)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            append_pieces(fd, i)
        finally:
            os.close(fd)
    finally:
        os.unlink(lock)


append = {"mailbox": with_mailbox, "fcntl": with_fcntl, "dotlock": with_dotlock}[mode]
for i in range(n):
    append(i)
    # Spread the appends over the other writers' time.
    time.sleep(0.02)
