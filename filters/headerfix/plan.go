package headerfix

import (
	"slices"
	"strings"

	"github.com/sluice-mail/sluice/filters"
)

// Turning a repaired header block into header edits.
//
// The obvious edits, "change the broken field and insert the split-off
// field after it", cannot be carried out faithfully: an insert index
// counts fields the milter never sees, and how many depends on the MTA
// (observed, see docs/headerfix.md). Postfix counts its own Received:
// field, which it hides from the milter. Sendmail counts its own Received:
// and the slots of its default fields (Date, From, Message-Id, Resent-*),
// used or not, and hides all of them. Change and delete indexes, on the
// other hand, count only the fields of one name that the milter saw, in
// both MTAs. So the edits here use only changes, deletes and adds: for
// each field name, the values of that name are made to be the repaired
// ones, in order, by changing the fields that exist, adding any extra and
// deleting any left over.
//
// Where an added field goes differs. Postfix puts it at the end of the
// header, so every field keeps its place among the fields of its name
// (which is what matters for a Received: chain) and filters.ApplyEdits
// predicts the result exactly. Sendmail (its milter code and observation
// agree) puts it into the default field of that name if Sendmail made one
// up itself, else before the first field of that name, else at the end.
// The first rule is welcome: a From: that a bare CR had hidden replaces
// the From: Sendmail made up because it saw none. The second would put a
// split-off field before the fields of its name, and a Received: above
// Sendmail's own; Repair does not make such splits for an MTA other than
// Postfix (see Placement), so with Sendmail an add is always of a name
// the header lacks, and only its position can differ from the model.

// invented returns the positions of input fields that the MTA made up only
// because a repaired line end had hidden the original: a field named like
// one split off, the only one of its name, after the field it was split
// from and among the fields at the end of the header that only the MTA
// adds there, with the value the MTA would have given it. Postfix adds Date:,
// From: and Message-Id: at the end of the header of mail from local
// clients when they are missing (local_header_rewrite_clients), and shows
// them to the milter. Sendmail adds the same fields but hides them; see
// above.
func invented(in []filters.Header, res Result, m *filters.Message) map[int]bool {
	// The candidate of each name: the position of the only field of that
	// name, if the MTA could have made it up, else -1. It is worked out
	// once per name, not per split-off field: a header can have
	// thousands of both, and the product would cost seconds.
	cand := map[string]int{}
	for _, f := range res.Fields {
		if !f.SplitOff || emptyMadeUp(f) {
			continue
		}
		switch name := filters.NameKey(f.Name); name {
		case "from", "date", "message-id":
			cand[name] = -1
		}
	}
	if len(cand) == 0 {
		return nil
	}
	count := map[string]int{}
	for i, h := range in {
		for name := range cand {
			if filters.SameName(h.Name, name) {
				count[name]++
				cand[name] = i
			}
		}
	}
	// Postfix adds its fields at the end of the header, after every
	// field of the client's: a field with one of the client's after it
	// is the client's own, whatever its value (a Date: is any date).
	// (With always_add_missing_headers, Postfix also adds its
	// undisclosed_recipients_header there.)
	tail := len(in)
	for tail > 0 && mtaAddsAtEnd(in[tail-1]) {
		tail--
	}
	// A milter before sluice in smtpd_milters may have added fields of
	// its own after Postfix's, at the end of the header (a spam
	// scanner's verdict), and sluice is shown them. Postfix writes its
	// fields as one block, Message-Id first: a Message-Id it made up,
	// which carries this message's queue id as no client's can, marks
	// the block wherever it stands (observed with Postfix 3.7,
	// cmd/sluice/chain_e2e_test.go).
	block, blockEnd := -1, -1
	for i, h := range in {
		if filters.SameName(h.Name, "Message-Id") && madeUp("message-id", h.Value, m) {
			block = i
		}
	}
	if block >= 0 && block < tail {
		blockEnd = block
		for blockEnd < len(in) && mtaAddsAtEnd(in[blockEnd]) {
			blockEnd++
		}
	}
	for name, i := range cand {
		inBlock := i >= block && i < blockEnd
		if count[name] != 1 || i < tail && !inBlock || !madeUp(name, in[i].Value, m) {
			cand[name] = -1
		}
	}
	var out map[int]bool
	for _, f := range res.Fields {
		if !f.SplitOff || emptyMadeUp(f) {
			continue
		}
		i, ok := cand[filters.NameKey(f.Name)]
		if !ok || i <= f.Source {
			continue
		}
		if out == nil {
			out = map[int]bool{}
		}
		out[i] = true
	}
	return out
}

// submitted returns the positions, by lower-case name, of the Date:,
// From: and Message-Id: fields that Sendmail's mail submission program
// (sendmail(1) on a host with Debian's submit.cf, FEATURE(msp)) made up
// because the message lacked them: it adds them below its own Received:
// ("by HOST (8.17.1.9/8.17.1.9/Submit)"), in that order, before relaying
// the message over SMTP to the daemon, which shows them to the milter
// (observed with 8.17, cmd/sluice/sendmail_local_e2e_test.go). A bare CR
// that hid the sender's own From: thus leaves a made-up From: above the
// broken field, where an added From: would go before it: the filter
// gives that field the sender's value instead (see replaced). Only a
// field that is the only one of its name, right below that Received:
// among the other made-up ones, with the value the submission program
// writes, counts.
func submitted(in []filters.Header, m *filters.Message) map[string]int {
	if len(in) < 2 || !filters.SameName(in[0].Name, "Received") || !strings.Contains(in[0].Value, "/Submit)") {
		return nil
	}
	// "(from USER@localhost) by HOST (.../Submit) id QUEUEID ...".
	_, id, _ := strings.Cut(in[0].Value, " id ")
	id, _, _ = strings.Cut(strings.TrimSpace(id), "\n")
	id = strings.TrimRight(strings.TrimSpace(id), ";")
	count := map[string]int{}
	for _, h := range in {
		if madeUpName(h.Name) {
			count[filters.NameKey(h.Name)]++
		}
	}
	// The program writes them in the order of its configuration's H
	// lines: a field out of that order is the sender's, and so is every
	// field after it.
	order := map[string]int{"date": 1, "from": 2, "message-id": 3}
	var out map[string]int
	last := 0
	for i := 1; i < len(in) && madeUpName(in[i].Name); i++ {
		key := filters.NameKey(in[i].Name)
		if order[key] <= last {
			break
		}
		last = order[key]
		v := strings.TrimSpace(in[i].Value)
		ok := count[key] == 1
		switch key {
		case "message-id":
			// <YYYYMMDDhhmm.QUEUEID@HOST>, with the program's queue
			// id (in its Received:), not the daemon's.
			ok = ok && id != "" && strings.Contains(v, "."+id+"@") && msgIDPrefix(v) == len(v)
		default:
			ok = ok && madeUp(key, v, m)
		}
		if ok {
			if out == nil {
				out = map[string]int{}
			}
			out[key] = i
		}
	}
	return out
}

// replaced returns the positions in sub (see submitted) of the fields
// that a field split off from a field below them replaces.
func replaced(res Result, sub map[string]int) map[int]bool {
	var out map[int]bool
	for _, f := range res.Fields {
		if !f.SplitOff || emptyMadeUp(f) {
			continue
		}
		if i, ok := sub[filters.NameKey(f.Name)]; ok && i < f.Source {
			if out == nil {
				out = map[int]bool{}
			}
			out[i] = true
		}
	}
	return out
}

// emptyMadeUp reports whether f is a From:, Date: or Message-ID: field
// split off with nothing in it. Such a field is not added, and the field
// of its name that the MTA made up stays: Sendmail, seeing an empty From:
// on a line of its own, drops it and makes up its own (observed), and an
// added empty field would fill the one it made up; with Postfix it would
// take the place of Postfix's. An empty field would cost the message the
// sender's address, its date or its id, and carries nothing.
func emptyMadeUp(f Field) bool {
	return f.SplitOff && strings.TrimSpace(f.Value) == "" && madeUpName(f.Name)
}

// mtaAddsAtEnd reports whether h is a field Postfix may add at the end of
// the header: a made-up From:, Date: or Message-Id:, or the To: of
// undisclosed recipients.
func mtaAddsAtEnd(h filters.Header) bool {
	return madeUpName(h.Name) ||
		filters.SameName(h.Name, "To") && strings.TrimSpace(h.Value) == "undisclosed-recipients:;"
}

// madeUpName reports whether both MTAs make up a field of this name when
// a message lacks it.
func madeUpName(name string) bool {
	switch filters.NameKey(name) {
	case "from", "date", "message-id":
		return true
	}
	return false
}

// madeUp reports whether value is what the MTA writes into a field it
// adds: From: is the envelope sender, Message-Id: holds the queue id
// (Postfix writes <YYYYMMDDhhmmss.QUEUEID@myhostname>), and Date: is a
// date.
func madeUp(name, value string, m *filters.Message) bool {
	v := strings.TrimSpace(value)
	switch name {
	case "from":
		a := m.From.Addr
		if a == "" {
			return false
		}
		if strings.EqualFold(v, a) || strings.EqualFold(v, "<"+a+">") {
			return true
		}
		// Mail submitted with Postfix's sendmail(1) reaches the milter
		// when non_smtpd_milters is set, and for it cleanup(8) writes the
		// submitting user's full name (passwd, -F or NAME) into the From
		// it makes up: "Full Name <sender>" (header_from_format = standard, the
		// default) or "sender (Full Name)" (obsolete). Without this, a
		// From that a bare CR had hidden was added next to that one and
		// the message left with two From fields (observed with Postfix
		// 3.7, cmd/sluice/nonsmtpd_e2e_test.go).
		n := len(a)
		if len(v) > n+3 && v[len(v)-1] == '>' && strings.EqualFold(v[len(v)-n-3:], " <"+a+">") {
			return true
		}
		return len(v) > n+3 && v[len(v)-1] == ')' && strings.EqualFold(v[:n+2], a+" (")
	case "message-id":
		return m.QueueID != "" && strings.Contains(v, m.QueueID) && msgIDPrefix(v) == len(v)
	case "date":
		return dateTimePrefix(v) == len(v)
	}
	return false
}

// droppedOnArrival holds the names of the fields Postfix removes from a
// message as it comes in, before its milters see the header: the default
// of message_drop_headers (postconf(5); observed with Postfix 3.7). A
// Return-Path: the client wrote would stand beside the one the delivery
// agent writes, and a Content-Length: would tell an mbox reader where
// the message ends. Postfix never lets them through on a line of their
// own, and a milter's add bypasses that rule.
var droppedOnArrival = map[string]bool{
	"bcc":            true,
	"content-length": true,
	"resent-bcc":     true,
	"return-path":    true,
}

// dropsOnArrival reports whether f is a field split off under a name
// that Postfix removes from a message as it comes in (droppedOnArrival):
// such a field is not added, as Postfix would have removed it had the
// client ended the line before it in CRLF. With Sendmail the milter sees
// such fields and Sendmail decides at delivery, so they are added as any
// other.
func dropsOnArrival(f Field, p Placement) bool {
	return p == AppendsAtEnd && f.SplitOff && droppedOnArrival[filters.NameKey(f.Name)]
}

// edits returns the header edits that turn in into the repaired block,
// leaving out the fields in drop, any field split off under the name
// trace (a forged trace field hidden behind a stray line end), an empty
// one of the MTA's (see emptyMadeUp) and one the MTA removes on arrival
// (see dropsOnArrival). See the comment at the top of the file.
func edits(in []filters.Header, res Result, drop map[int]bool, trace string, p Placement) []filters.HeaderEdit {
	type slot struct {
		name  string // as written in the message
		value string
		pos   int // position in the wanted block
	}
	have := map[string][]slot{}
	var names []string // lower-case, in order of first appearance
	seen := map[string]bool{}
	note := func(key string) {
		if !seen[key] {
			seen[key] = true
			names = append(names, key)
		}
	}
	for i, h := range in {
		if !validName(h.Name) {
			continue
		}
		key := filters.NameKey(h.Name)
		note(key)
		have[key] = append(have[key], slot{name: h.Name, value: h.Value, pos: i})
	}
	want := map[string][]slot{}
	for i, f := range res.Fields {
		if !validName(f.Name) || !f.SplitOff && drop[f.Source] || trace != "" && filters.SameName(f.Name, trace) || emptyMadeUp(f) || dropsOnArrival(f, p) {
			continue
		}
		key := filters.NameKey(f.Name)
		note(key)
		want[key] = append(want[key], slot{name: f.Name, value: f.Value, pos: i})
	}

	var changes, deletes []filters.HeaderEdit
	var adds []slot
	for _, key := range names {
		h, w := have[key], want[key]
		// Both MTAs count the fields of a name whatever their case, but
		// a change cannot give a field another spelling the same way in
		// both: Postfix writes the name of the edit, Sendmail keeps the
		// field's (observed). So changes go only to fields spelt as the
		// wanted one; from the first that is not (a field split off
		// among fields of another spelling), the fields are deleted and
		// the wanted ones added, in order.
		same := 0
		for same < len(h) && same < len(w) && h[same].name == w[same].name {
			same++
		}
		for k := 0; k < same; k++ {
			if h[k].value != w[k].value {
				changes = append(changes, filters.HeaderEdit{Kind: filters.ChangeHeader, Name: h[k].name, Index: k + 1, Value: changeValue(w[k].value)})
			}
		}
		for k := len(h); k > same; k-- {
			deletes = append(deletes, filters.HeaderEdit{Kind: filters.DeleteHeader, Name: h[k-1].name, Index: k})
		}
		adds = append(adds, w[same:]...)
	}
	slices.SortFunc(adds, func(a, b slot) int { return a.pos - b.pos })
	out := append(changes, deletes...)
	for _, a := range adds {
		out = append(out, filters.HeaderEdit{Kind: filters.AddHeader, Name: a.name, Value: a.value})
	}
	return out
}

// changeValue keeps an empty value from turning a change into a delete:
// the milter protocol deletes a field whose new value is empty.
func changeValue(v string) string {
	if v == "" {
		return " "
	}
	return v
}
