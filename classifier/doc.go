// Package classifier is sluice's Bayesian spam classifier: a MIME-aware
// tokenizer, Robinson/Fisher scoring as bogofilter does it, and a token
// store. It knows nothing of milters; the CLI (sluice train, classify, db)
// and the Bayes filter are built on the API below.
//
// # Use
//
//	st, err := classifier.Open(path)               // bbolt store, created if missing
//	c, err := classifier.NewForStore(ctx, st, p)   // p: Params, zero value = defaults
//	res, err := c.Classify(ctx, r)                 // res.Verdict, res.Spamicity, res.Reason
//	res, err := c.Explain(ctx, r)                  // plus res.Clues, the deciding tokens
//	out, err := c.Train(ctx, r, classifier.Spam)   // Learned, AlreadyLearned or Moved
//	out, err := c.Untrain(ctx, r, classifier.Spam) // Unlearned or NotLearned
//
// Bulk training prepares messages with Prepare and learns them with Learn in
// batches of a few hundred: one store transaction per batch.
// Export/Import move a store losslessly through a text format;
// ImportBogoutil reads bogofilter's "bogoutil -d" word list. The store
// interface also has Stats, Walk (dump), Prune.
//
// # Tokens
//
// The tokenizer walks every MIME part (go-message's multipart reader),
// decodes quoted-printable and base64 (also a multipart body that declares
// one, which RFC 2045 does not allow and spam does to hide its parts, if
// its parts cannot be read as they stand: "mime:encoded"), converts
// charsets to UTF-8 (by their registered names, and by the labels
// Microsoft's programs wrote, such as "win-1251", "cp932" and
// "CHINESEBIG5"; unknown ones best effort: valid UTF-8 kept, else read as
// windows-1252), turns HTML into its visible text plus the hosts of
// links and images ("url:host", as for URLs in text; a host written in
// Unicode or with percent-encodings in the ASCII form a browser looks up,
// "url:xn--bcher-kva.example" for "bücher.example", "url:evil.example"
// for "%65vil.example", "url:spamsite.com" for "spamsite。com": the full
// stops of Chinese and Japanese are label dots there, in text only
// before a Latin letter or digit), tags words of selected header fields ("subj:",
// "from:", "to:", "rcvd:", ...; of Message-ID only the domain), adds
// tokens of the header's shape
// (the networks of the oldest public address of the Received chain,
// "rnet:"; the shape and zone of the Date, "date:"; a fingerprint of the
// order of the first fields, "ord:"), and for binary parts keeps only type
// and file name. Characters that show as nothing (the zero-width space,
// the soft hyphen ...) are left out of the words they stand in, words
// are read in normalization form NFKC (full-width and mathematical
// letters as plain ones, and circled and squared ones too), and the Cyrillic and Greek look-alikes written
// into a Latin word ("pаypal") are read as the Latin letters they look
// like. The text of an inline HTML element that its style or the hidden
// attribute hides is read apart, so that it neither splits nor joins the
// visible words around it. Words of
// three bytes or more in the body and the subject
// also form pairs with the previous such word ("click here", "subj:cheap
// meds"); shorter words are skipped without breaking the chain. Runs of
// scripts written without spaces between words become overlapping pairs:
// of characters for CJK (Han, kana, Hangul), of clusters (a character
// with the vowel signs and tone marks on it) for Thai, Lao, Khmer,
// Myanmar and the Tai scripts. Broken MIME yields what can be read; work
// per message is bounded (TokenizerOptions). Each distinct token counts
// once per message.
//
// The tokenizer keeps its scratch memory between messages (tokens go into
// one byte arena behind an open-addressing table), so a message costs a
// handful of allocations whatever its number of words.
//
// Stores imported from bogofilter use DialectBogofilter, a tokenizer that
// reproduces bogofilter's tokens, so imported training keeps working.
//
// # Scoring
//
// Each token gets Robinson's f(w) = (s*x + n*p(w)) / (s + n), with p(w) the
// token's spam frequency over spam plus ham frequency, n its message count,
// x = RobX and s = RobS. Tokens with |f(w) - 0.5| < MinDev are dropped; the
// rest are combined with Fisher's inverse chi-square method. With
// CombineFisher (bogofilter's way) that one test over all the tokens is
// the score; with CombineSplit (the default) the header-field tokens and
// the body tokens also get a test each, and the score is the mean of the
// whole-message log-odds and the mean of the two parts' (see Score). The
// spamicity is in [0,1]: at or above SpamCutoff the verdict is spam, at or
// below HamCutoff ham, otherwise unsure. Until MinSpam spam and MinHam ham
// messages have been learned, the verdict is unsure with a Reason.
// Result.LogOdds is the spamicity's log-odds, computed from the logarithms
// of the chi-square tails, so it keeps ordering messages whose spamicity
// rounds to exactly 0 or 1.
//
// Next to the token counts, an n-gram model (a linear model over the
// 4-byte sequences at the start of the raw message, fitted on the
// modified Huber loss, see ngram.go)
// gives a second opinion, and the spamicity is the mean of the two
// opinions' probabilities (BlendNgram). The model is fitted afresh from the
// n-grams the store keeps with the learned messages' digests (Refit),
// after each training run, so training order does not matter; a refit
// drops the n-grams of the messages no fit would take (DropFeatures).
//
// The defaults (DefaultParams: robx 0.45, robs 0.2, min_dev 0.47, cutoffs
// 0.85 and 0.05, CombineSplit, the n-gram model on, at least 10 spam and 10
// ham learned) were chosen by cross-validation on the training part of the
// SpamAssassin corpus, false positives first; see DefaultParams. A store
// imported from bogofilter is best scored with BogofilterParams, which has
// no n-gram model.
//
// # Learning
//
// The store keeps a SHA-256 digest (MessageDigest, which ignores trace and
// delivery fields) and the class of every learned message: learning the
// same message again in the same class is a no-op, learning it in the other
// class moves its counts (bogofilter's -Sn/-Ns), and unlearning removes it.
//
// # Sharing the store between the daemon and the CLI
//
// bbolt takes an exclusive flock for a read-write open and a shared one
// for a read-only open, held until close, so a daemon holding the file
// open read-write would lock the CLI out entirely. BoltStore therefore
// never keeps the file open for writing:
//
//   - reads (classification) go through a read-only handle that stays open
//     between messages, so classifying costs no open;
//   - every write (Learn, Add, a batch of Prune) takes PATH.lock exclusively (the
//     turnstile), opens the file read-write, commits one transaction, and
//     closes it again; Learn calls of one process that queue behind a
//     write share the next (see BoltStore.Learn);
//   - a process with a read-only handle checks the turnstile every
//     PollInterval (50 ms) and closes its handle when a writer waits; its
//     next read passes through the turnstile and reopens once the writer is
//     done.
//
// A process that classifies many messages (more than
// BoltOptions.IndexAfter tokens looked up, or after BuildIndex) keeps an
// in-memory index of the token counts, keyed by 64-bit hashes (about 27
// bytes per token, up to BoltOptions.IndexTokens tokens): a lookup is then
// a probe of a table instead of a B+tree descent in the file, which is most
// of the cost of classifying a message. The index leaves out the tokens
// seen in too few messages for the classifier's parameters ever to count
// them, most of a store (see countFloor). It belongs to one bbolt
// transaction ID of one file: this process's own Learn updates it, any
// other write makes it stale, and it is rebuilt by reading the store once
// (about 0.1 s per million tokens).
//
// So "sluice train" works while the daemon runs: the CLI's batches wait at
// most one poll interval plus the reads in flight, and the daemon's
// classifications wait at most one training batch (BoltOptions.LockTimeout
// bounds both, then ErrBusy). The alternative, training through the
// daemon over a control socket, would make the CLI depend on a running
// daemon and on a protocol; the turnstile needs neither, and a daemon that
// learns (auto-learn) uses the same path. Both processes need write access
// to PATH and PATH.lock. A process that only reads (BoltOptions.ReadOnly)
// needs read access alone: it takes PATH.lock for reading, or, with no
// PATH.lock it may read, opens PATH for each read and closes it after.
package classifier
