package main

import (
	"os"
	"strings"
	"testing"
)

// Postfix's local(8) pipes a message to a mailbox_command (procmail, and
// from it sluice classify) with a From_ line first but its body's "From "
// lines unquoted (command delivery has no MAIL_COPY_QUOTE; only mailbox
// files do). A ham whose body holds what reads as an mbox separator
// after an empty line (an mbox pasted into a question about it, or sent
// as a text/plain attachment, whose first line follows the part's
// header) was split into two messages, and the exit status of several
// messages, 0, is the one message's "spam": the recipe that docs/
// training.md shows filed the ham to Junk.
func TestClassifyPipedMessageNotSpam(t *testing.T) {
	db := trainedDB(t)
	ham, err := os.ReadFile(fixture("check", "ham.eml"))
	if err != nil {
		t.Fatal(err)
	}
	piped := "From erin@lab.example  Mon Jan 21 10:20:01 2024\n" +
		"Return-Path: <erin@lab.example>\nX-Original-To: bob@lab.example\nDelivered-To: bob@lab.example\n" +
		string(ham) + "\nThe archive my script cannot read starts so:\n\n" +
		"From carol@lab.example Mon Jan  1 10:00:00 2024\nSubject: results\n\nnotes\n"
	r := runCLI(t, piped, "classify", "--db", db)
	if r.code == statusSpam || strings.Contains(r.stdout, ": spam") {
		t.Errorf("one ham piped by local(8): exit status %d (spam), output %q", r.code, r.stdout)
	}
}
