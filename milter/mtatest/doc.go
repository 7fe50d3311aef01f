// Package mtatest runs real MTAs for end-to-end tests: a private Postfix
// or Sendmail instance on a loopback port, wired to the milter under test,
// delivering into a Maildir the test can read. It is a test helper; import
// it only from _test.go files.
//
// # Starting an MTA
//
// StartPostfix and StartSendmail create an instance directory under /tmp,
// run the scripts in testdata/mta (which install missing Debian packages
// through testdata/install-deps.sh), wait until the MTA greets, and
// register a cleanup that stops it and deletes the directory. On failure
// the MTA's log is copied into the test log. Both need root (the MTAs drop
// privileges themselves); without root, or when a package cannot be
// installed, the test is skipped, or fails when CI=true (see Require).
//
//	ln, spec := mtatest.MilterListener(t, "unix") // "unix:/tmp/sl-m.../milter.sock"
//	go server.Serve(ln)
//	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{
//		Milter:        spec,       // same syntax for StartSendmail
//		DefaultAction: "tempfail", // or "accept", "reject"
//		ExtraConfig:   []string{"message_size_limit = 1000000"}, // main.cf lines
//	})
//
// Milter specs use Postfix syntax for both MTAs: "unix:/path" or
// "inet:127.0.0.1:PORT" ("inet:[::1]:PORT"); StartSendmail converts them to
// Sendmail's "inet:PORT@127.0.0.1". A unix socket must be reachable by
// Postfix's unprivileged smtpd: MilterListener takes care of that (directory
// 0755, socket 0666). DeadMilter gives a spec nothing listens on, for
// testing the MTA's behaviour when the milter is down.
//
// Both MTAs are configured alike:
//   - *@lab.example is delivered into one Maildir (MTA.Delivered);
//   - *@discard.example is accepted and thrown away (benchmark sink);
//   - any other recipient domain is refused at RCPT time, so nothing ever
//     leaves the machine (foreign senders are fine);
//   - the milter receives each MTA's default macros plus {client_addr}
//     {client_name} {client_port} at connect, and i (queue id) at every
//     later stage where the MTA knows it.
//
// Macros observed with the default settings (go-milter v0.5.0 client side):
//
//	stage    Postfix 3.7                                  Sendmail 8.17
//	connect  j _ v {daemon_name} {daemon_addr}            j _ {daemon_name} {if_name}
//	         {client_addr} {client_name} {client_port}    {client_addr} {client_name} {client_port}
//	mail     {mail_addr} {mail_host} {mail_mailer}        i {mail_addr} {mail_host} {mail_mailer}
//	eom      i                                            i {msg_id}
//
// Postfix has no queue id before the first accepted RCPT, so i is missing
// at MAIL. {auth_*} macros are configured but empty: no SMTP AUTH is set
// up. Postfix's {mail_mailer} for a foreign sender is "error" (its
// outbound transport is disabled); Sendmail's {mail_addr} for a sender in
// lab.example is the bare local part. {client_name} is "unknown" with
// Postfix (no reverse lookups) and "localhost" with Sendmail.
//
// When the milter is down, the default action shows as follows: accept
// delivers without the milter; tempfail answers 451 at MAIL (Postfix
// "4.7.1 Service unavailable - try again later", Sendmail "4.3.2 Please try
// again later"); reject greets with 554.
//
// Instances are independent (own directory, port, queue and log), so tests
// may start several and run in parallel. Start-up takes well under a
// second for either MTA once the packages are installed; starting one
// instance per test and sending many messages through it keeps suites fast.
//
// # Talking SMTP
//
// DialSMTP returns a deliberately raw client: every reply is returned
// exactly (code, text of all lines, raw bytes), commands are sent as given,
// and Data sends the message bytes unchanged apart from dot-stuffing, so
// tests can send bare CR or bare LF wherever they like:
//
//	c := mtatest.DialSMTP(t, mta.Addr())
//	c.Cmd("EHLO client.example")
//	r := c.Send("alice@lab.example", []string{"bob@lab.example"}, raw)
//	if r.Code != 250 { t.Fatalf("DATA: %v", r) }
//	id := r.QueueID()
//	c.Cmd("RSET") // several messages per session are fine
//	c.Quit()
//
// # Mail submitted on the host
//
// With Postfix, SubmitLocal submits a message with the instance's own
// sendmail(1), as a local program would; it goes through the milter only
// with PostfixOptions.NonSMTPDMilters, after Postfix's simulated connect
// from localhost[127.0.0.1] (port 0) and HELO localhost. sendmail exits
// before the milter is asked; a message the milter answers with a
// temporary failure stays in the maildrop queue (Queued lists it), tried
// again when KickPickup (or pickup's own timer) has it scanned again:
//
//	mta := mtatest.StartPostfix(t, mtatest.PostfixOptions{Milter: spec, NonSMTPDMilters: true})
//	out, err := mta.SubmitLocal(t, "alice@lab.example", []string{"bob@lab.example"}, raw)
//
// With Sendmail, SubmitLocal runs the instance's mail submission program
// (etc/submit.cf, FEATURE(msp)), which relays the message over SMTP from
// 127.0.0.1 to the daemon, and so through the milter, and waits for the
// answer; a message it could not relay (a temporary failure) stays in
// spool/clientmqueue, which Queued lists.
//
// # Checking results
//
//	ds := mta.WaitDelivered(t, 1, 10*time.Second) // parsed Maildir files
//	ds[0].Get("X-Spam-Flag")                       // also .Header (in order), .Body, .Raw
//	mta.AssertNothingDelivered(t, 10*time.Second)  // waits for an idle queue first
//	held := mta.Held(t)                            // quarantined queue ids
//	line := mta.WaitLog(t, "milter-reject", 5*time.Second)
//
// Delivered returns every message delivered since the instance started (or
// since ClearDelivered). WaitIdle waits until no message is queued for
// delivery any more; quarantined (held) messages do not count as queued.
package mtatest
