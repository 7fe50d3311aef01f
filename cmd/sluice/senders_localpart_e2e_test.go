package main

import "testing"

// Postfix accepts quotes and backslashes in the local part of MAIL FROM
// that RFC 5321 does not have, and delivers the message from the address
// without them: <\mallory@client.example> and <m\allory@client.example>
// are from mallory@client.example, <"john"."doe"@client.example> from
// john.doe@client.example. A rule on that address refuses them too.
func TestSendersEndToEndPostfixQuotedLocalPart(t *testing.T) {
	postfixSenderForms(t, "mallory@client.example\tREJECT\njohn.doe@client.example\tREJECT\n",
		[]string{`<\mallory@client.example>`, `<m\allory@client.example>`, `<mallor\y@client.example>`, `<client.example!m\allory>`, `<m\allory%client.example>`,
			`<"john"."doe"@client.example>`, `<john."doe"@client.example>`, `<"john".doe@client.example>`},
		[]senderForm{
			{`<b\ob@client.example>`, "<bob@client.example>"},
			{`<a\ b@client.example>`, `<"a b"@client.example>`},
			{`<client.example!d\ave>`, "<dave@client.example>"},
			{`<e\rin%client.example>`, "<erin@client.example>"},
			{`<"x"."y"@client.example>`, "<x.y@client.example>"},
			{`<x."y"@client.example>`, "<x.y@client.example>"},
		})
}
