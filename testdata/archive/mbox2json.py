#!/usr/bin/env python3
# mbox2json.py MBOX - read an mbox with Python's own mailbox module, an
# independent parser, and print its messages as a JSON list of
# {"from": the "From " line after "From ", "message": the message}.
#
# mailbox.mbox does not undo mboxrd quoting, so one ">" is taken off
# every ">From ", ">>From " ... line here, as an mboxrd reader does.
# Bytes are passed through as Latin-1 so that any byte survives JSON.
import json
import mailbox
import re
import sys

box = mailbox.mbox(sys.argv[1], create=False)
out = []
for key in box.iterkeys():
    raw = box.get_bytes(key)
    from_line = box.get_message(key).get_from()
    message = re.sub(rb"(?m)^>(>*From )", rb"\1", raw)
    out.append({"from": from_line, "message": message.decode("latin-1")})
json.dump(out, sys.stdout)
