package dnsbl

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mail/sluice/filters"
)

// Config is the filter's options, as written under options: in the
// configuration file. The zero value of every field means its default;
// docs/dnsbl.md lists them.
type Config struct {
	// Servers are the resolvers to ask, as host:port ("127.0.0.1:53",
	// "[::1]:53"); a host without port means port 53. Default: the
	// nameservers of /etc/resolv.conf.
	Servers []string `yaml:"servers"`
	// Timeout bounds each query attempt; default 2s.
	Timeout time.Duration `yaml:"timeout"`
	// Attempts is how many times a query is tried (each time at the next
	// server) before it counts as failed; default 2.
	Attempts int `yaml:"attempts"`
	// Transport is how queries reach the servers: "udp" (default: over
	// UDP, a truncated answer asked again over TCP) or "tcp" (every
	// query over TCP), for servers reachable over TCP only. Unset, it
	// is "tcp" when the servers come from a resolv.conf that sets
	// "options use-vc", as the C library reads that file.
	Transport string `yaml:"transport"`
	// MaxInFlight bounds the queries of lookups in flight at once;
	// default 256.
	MaxInFlight int `yaml:"max_in_flight"`
	// CacheSize bounds the cached answers; nil means 10000, 0 caches
	// nothing, failed queries included (MaxTTL 0 caches no answer but
	// still remembers failures).
	CacheSize *int `yaml:"cache_size"`
	// MaxTTL caps how long an answer is cached, whatever its TTL; nil
	// means 1h, 0 not at all (as FailureTTL).
	MaxTTL *time.Duration `yaml:"max_ttl"`
	// FailureTTL is how long a failed query is remembered (not retried);
	// nil means 30s, 0 not at all.
	FailureTTL *time.Duration `yaml:"failure_ttl"`
	// ProbeInterval is how often each list's test entry is queried; nil
	// means 5m, 0 turns the probes off.
	ProbeInterval *time.Duration `yaml:"probe_interval"`
	// SkipPrivate skips clients on loopback, private, shared (CGNAT) and
	// link-local addresses; nil means true.
	SkipPrivate *bool `yaml:"skip_private"`
	// TrustedNetworks are more networks whose clients are not checked,
	// in CIDR notation.
	TrustedNetworks []string `yaml:"trusted_networks"`
	// SkipAuthenticated skips senders that authenticated with SMTP AUTH
	// (the MTA's {auth_authen} macro is set); nil means true.
	SkipAuthenticated *bool `yaml:"skip_authenticated"`
	// IPStage is when the client address is checked: "connect" (default)
	// or "mail".
	IPStage string `yaml:"ip_stage"`
	// Header is the field added for each listing of a zone whose action
	// is tag; default X-Sluice-DNSBL.
	Header string `yaml:"header"`
	// Score sets what the summed score of the tag listings does.
	Score ScoreConfig `yaml:"score"`
	// Zones are the lists to check, in order.
	Zones []ZoneConfig `yaml:"zones"`

	// resolvConf is the file the default servers come from; "" means
	// /etc/resolv.conf. resolvPort, if set, is the port they are asked
	// on instead of 53, which a resolv.conf cannot change. Tests set
	// both, to run their servers as nameservers of a file of their own.
	resolvConf string
	resolvPort string
}

// ScoreConfig is what the summed score of a message's tag listings does.
type ScoreConfig struct {
	// Header is the field carrying the score; default X-Sluice-DNSBL-Score.
	Header string `yaml:"header"`
	// Threshold: a message whose score reaches it gets Action. 0 (the
	// default) means the score only goes into the header.
	Threshold float64 `yaml:"threshold"`
	// Action is reject (default), tempfail or quarantine.
	Action string `yaml:"action"`
	// Reply is the SMTP reply for reject and tempfail.
	Reply string `yaml:"reply"`
}

// ZoneConfig is one list.
type ZoneConfig struct {
	// Zone is the list's DNS zone, e.g. "zen.spamhaus.org". It is used
	// for queries only: it may hold an access key (Spamhaus DQS).
	Zone string `yaml:"zone"`
	// Name is what replies, header fields, logs and metrics call the
	// list. Default: the zone, without the key of a Spamhaus DQS zone
	// (see displayName).
	Name string `yaml:"name"`
	// Type is "ip" (default: the client address is looked up) or
	// "domain" (domains are looked up, see Check).
	Type string `yaml:"type"`
	// Family, for ip lists: "any" (default), "ipv4" or "ipv6".
	Family string `yaml:"family"`
	// Check, for domain lists: which domains, of "sender" (envelope
	// sender), "header_from" and "helo"; default sender and header_from.
	Check []string `yaml:"check"`
	// Codes maps the answers that count as a listing (an address or a
	// prefix inside 127.0.0.0/8) to a reason. Default: every answer in
	// 127.0.0.0/8 except the refusal codes.
	Codes map[string]string `yaml:"codes"`
	// Action is reject (default), tempfail or tag.
	Action string `yaml:"action"`
	// Reply is the SMTP reply for reject and tempfail.
	Reply string `yaml:"reply"`
	// TXT looks up the list's TXT record for the reason text.
	TXT bool `yaml:"txt"`
	// Score is what a tag listing adds to the message's score; default 1.
	Score *float64 `yaml:"score"`
	// Probe queries the list's test entry every probe_interval; nil
	// means true.
	Probe *bool `yaml:"probe"`
}

// Defaults.
const (
	DefaultTimeout         = 2 * time.Second
	DefaultAttempts        = 2
	DefaultMaxInFlight     = 256
	DefaultCacheSize       = 10000
	DefaultMaxTTL          = time.Hour
	DefaultFailureTTL      = 30 * time.Second
	DefaultProbeInterval   = 5 * time.Minute
	DefaultHeader          = "X-Sluice-DNSBL"
	DefaultScoreHeader     = "X-Sluice-DNSBL-Score"
	DefaultIPRejectReply   = "554 5.7.1 Service unavailable; client [{listed}] blocked using {zone} ({reason})"
	DefaultIPTempfailReply = "451 4.7.1 Service unavailable; client [{listed}] listed in {zone} ({reason}), try again later"
	DefaultDomainReject    = "554 5.7.1 Domain {listed} blocked using {zone} ({reason})"
	DefaultDomainTempfail  = "451 4.7.1 Domain {listed} listed in {zone} ({reason}), try again later"
	DefaultScoreReply      = "554 5.7.1 Listed on too many blocklists (score {score})"
	DefaultScoreTempfail   = "451 4.7.1 Listed on too many blocklists (score {score}), try again later"
)

// Limits of the options, so that a typo cannot make one message cost
// minutes or the cache eat the memory.
const (
	maxAttempts  = 5
	maxInFlight  = 10_000
	maxTimeout   = 30 * time.Second
	maxCacheSize = 10_000_000
	maxZones     = 50
	// maxZoneName leaves room in a query name for the 64 characters of
	// a reversed IPv6 address in front of the zone.
	maxZoneName = maxName - 64
)

// maxScoreText is the longest score formatScore writes: a float64 in
// full, up to 17 digits after the 307 zeros of the smallest normal
// numbers (0.000...22250738585072014), 326 characters.
const maxScoreText = 326

// resolvConf is where the default servers come from.
const resolvConf = "/etc/resolv.conf"

// zoneKind says what a list lists.
type zoneKind uint8

const (
	ipList zoneKind = iota
	domainList
)

// zoneAction is what a listing does.
type zoneAction uint8

const (
	actReject zoneAction = iota
	actTempfail
	actTag
)

var zoneActionNames = []string{"reject", "tempfail", "tag"}

func (a zoneAction) String() string { return zoneActionNames[a] }

// Targets of domain lists.
const (
	targetSender     = "sender"
	targetHeaderFrom = "header_from"
	targetHelo       = "helo"
)

// codeRule is one configured return code: answers inside prefix count,
// with reason.
type codeRule struct {
	prefix netip.Prefix
	reason string
}

// zone is a checked ZoneConfig.
type zone struct {
	// zone is the zone queried, lower case, no final dot. It is never
	// shown: it may hold an access key, which a reply or a header field
	// would give to every client refused or every recipient.
	zone string
	// name is what replies, header fields, logs and metrics call the
	// list (see displayName).
	name   string
	kind   zoneKind
	v4, v6 bool     // ip lists: families looked up
	checks []string // domain lists: targets, in order
	codes  []codeRule
	action zoneAction
	reply  filters.Reply // code and enhanced status
	text   template      // reply text
	txt    bool
	score  float64
	probe  bool
	// index is the list's place in the configuration's zones, which
	// decides between refusing lists of equal action (see block).
	index int

	// lastWarn (unix nanoseconds) limits warnings about failed lookups
	// to one per warnEvery, so a dead list cannot flood the log.
	lastWarn atomic.Int64
	// lastRefusedWarn does the same for warnings about a server the
	// list refuses while another answers (see noteRefused).
	lastRefusedWarn atomic.Int64
	// listsAll is set while the health probes find the list answering
	// the entry no list may have as listed (see probeAll).
	listsAll atomic.Bool

	// labels are the codes told apart in metrics so far; New puts in
	// those of the filter's earlier instances (see Shared).
	labels *codeLabels
}

// codeLabels are the return codes of one list that the listings metric
// tells apart. It is safe for concurrent use.
type codeLabels struct {
	mu   sync.Mutex
	seen map[netip.Addr]bool
}

// codeLabel returns how the listings metric names return code c: as
// itself while the list has shown fewer than maxCodeLabels codes, else
// OtherCode. Each code is a series of the metric, and a list (or whatever
// answers for it) that made up codes for each name would otherwise make
// series without end.
func (z *zone) codeLabel(c netip.Addr) string {
	l := z.labels
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.seen[c] {
		if len(l.seen) >= maxCodeLabels {
			return OtherCode
		}
		if l.seen == nil {
			l.seen = map[netip.Addr]bool{}
		}
		l.seen[c] = true
	}
	return c.String()
}

// checks reports whether a domain list looks up target.
func (z *zone) checksTarget(target string) bool {
	for _, c := range z.checks {
		if c == target {
			return true
		}
	}
	return false
}

// settings is a checked Config, ready for use.
type settings struct {
	servers       []string
	inOrder       bool   // ask servers first to last (resolv.conf), not in turn
	useVC         bool   // resolv.conf sets "options use-vc"
	resolvConf    string // the file servers came from, "" when configured
	resolvPort    string // the port of its servers, "" for 53 (see Config)
	timeout       time.Duration
	attempts      int
	tcpOnly       bool // transport: tcp
	udpFirst      bool // transport: udp, set in so many words
	maxInFlight   int
	cacheSize     int
	maxTTL        time.Duration
	failureTTL    time.Duration
	probeInterval time.Duration
	skipPrivate   bool
	trusted       []netip.Prefix
	skipAuth      bool
	ipAtMail      bool
	header        string
	scoreHeader   string
	threshold     float64
	scoreAction   filters.Action
	scoreReply    filters.Reply
	scoreText     template
	zones         []*zone
}

// check validates c and fills in defaults.
func (c Config) check() (settings, error) {
	s := settings{
		timeout:       c.Timeout,
		attempts:      c.Attempts,
		maxInFlight:   c.MaxInFlight,
		cacheSize:     DefaultCacheSize,
		maxTTL:        DefaultMaxTTL,
		failureTTL:    DefaultFailureTTL,
		probeInterval: DefaultProbeInterval,
		skipPrivate:   true,
		skipAuth:      true,
		header:        c.Header,
		scoreHeader:   c.Score.Header,
		threshold:     c.Score.Threshold,
	}
	var err error
	path := c.resolvConf
	if path == "" {
		path = resolvConf
	}
	if len(c.Servers) > 0 {
		if s.servers, err = serverList(c.Servers, ""); err != nil {
			return s, err
		}
	} else {
		set, err := defaultServers(path, c.resolvPort)
		if err != nil {
			return s, err
		}
		s.servers, s.inOrder, s.useVC = set.servers, set.inOrder, set.tcp
		s.resolvConf, s.resolvPort = path, c.resolvPort
	}
	switch {
	case s.timeout == 0:
		s.timeout = DefaultTimeout
	case s.timeout < 0 || s.timeout > maxTimeout:
		return s, fmt.Errorf("timeout %s: must be above 0 and at most %s", s.timeout, maxTimeout)
	}
	switch {
	case s.attempts == 0:
		s.attempts = DefaultAttempts
	case s.attempts < 0 || s.attempts > maxAttempts:
		return s, fmt.Errorf("attempts %d: must be 1 to %d", s.attempts, maxAttempts)
	}
	switch {
	case s.maxInFlight == 0:
		s.maxInFlight = DefaultMaxInFlight
	case s.maxInFlight < 0 || s.maxInFlight > maxInFlight:
		return s, fmt.Errorf("max_in_flight %d: must be 1 to %d", s.maxInFlight, maxInFlight)
	}
	switch c.Transport {
	case "":
	case "udp":
		s.udpFirst = true
	case "tcp":
		s.tcpOnly = true
	default:
		return s, fmt.Errorf("transport %q: want udp or tcp", c.Transport)
	}
	if c.CacheSize != nil {
		// 0 keeps nothing rather than meaning the default, as max_ttl,
		// failure_ttl and probe_interval read 0s: someone who writes
		// "cache_size: 0" means no cache, and silently getting 10000
		// answers cached would surprise them.
		if n := *c.CacheSize; n < 0 || n > maxCacheSize {
			return s, fmt.Errorf("cache_size %d: must be 0 (no cache) to %d", n, maxCacheSize)
		}
		s.cacheSize = *c.CacheSize
	}
	if c.MaxTTL != nil {
		// 0 caches nothing rather than meaning the default, as
		// failure_ttl: 0s remembers no failure: both say how long
		// something is kept, and "0s" read as "an hour" would surprise
		// whoever wrote it.
		if *c.MaxTTL < 0 {
			return s, fmt.Errorf("max_ttl %s: must not be negative (0s caches no answer)", *c.MaxTTL)
		}
		s.maxTTL = *c.MaxTTL
	}
	if c.FailureTTL != nil {
		if *c.FailureTTL < 0 || *c.FailureTTL > 5*time.Minute {
			// RFC 2308 section 7: a server failure may be cached for at
			// most five minutes.
			return s, fmt.Errorf("failure_ttl %s: must be 0 to 5m", *c.FailureTTL)
		}
		s.failureTTL = *c.FailureTTL
	}
	if c.ProbeInterval != nil {
		if *c.ProbeInterval < 0 || *c.ProbeInterval > 0 && *c.ProbeInterval < time.Second/10 {
			return s, fmt.Errorf("probe_interval %s: must be 0 (off) or at least 100ms", *c.ProbeInterval)
		}
		s.probeInterval = *c.ProbeInterval
	}
	if c.SkipPrivate != nil {
		s.skipPrivate = *c.SkipPrivate
	}
	if c.SkipAuthenticated != nil {
		s.skipAuth = *c.SkipAuthenticated
	}
	for i, n := range c.TrustedNetworks {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(n))
			if aerr != nil {
				return s, fmt.Errorf("trusted_networks[%d] %q: want a network such as 192.0.2.0/24 or an address", i, n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			// Clients are compared in their IPv4 form (see trusted), so
			// a network written as a dual-stack socket shows them
			// (::ffff:192.0.2.0/120) must be too, or it matches none.
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		s.trusted = append(s.trusted, p.Masked())
	}
	switch c.IPStage {
	case "", "connect":
	case "mail":
		s.ipAtMail = true
	default:
		return s, fmt.Errorf("ip_stage %q: want connect or mail", c.IPStage)
	}
	if s.header == "" {
		s.header = DefaultHeader
	}
	// A listing's field starts "zone;", which fold cannot break.
	if err := filters.CheckFieldName(s.header, maxZoneName+len(";")); err != nil {
		return s, fmt.Errorf("header: %w", err)
	}
	if s.scoreHeader == "" {
		s.scoreHeader = DefaultScoreHeader
	}
	if err := filters.CheckFieldName(s.scoreHeader, maxScoreText); err != nil {
		return s, fmt.Errorf("score.header: %w", err)
	}
	if filters.SameName(s.header, s.scoreHeader) {
		return s, errors.New("score.header: must differ from header")
	}
	if err := c.Score.check(&s); err != nil {
		return s, fmt.Errorf("score.%w", err)
	}
	if len(c.Zones) == 0 {
		return s, errors.New("zones: at least one list is needed")
	}
	if len(c.Zones) > maxZones {
		return s, fmt.Errorf("zones: %d lists, at most %d allowed", len(c.Zones), maxZones)
	}
	// The zones and the names of one type, by the index of the list
	// that has them. Metrics, the health of a list and the codes told
	// apart are kept by name, and a reply or header field is read by
	// it: two lists of one name would count as one, and the reader
	// could not tell which listed.
	type kindKey struct {
		kind zoneKind
		s    string
	}
	zones, names := map[kindKey]int{}, map[kindKey]int{}
	for i, zc := range c.Zones {
		z, err := zc.check()
		if err != nil {
			return s, fmt.Errorf("zones[%d].%w", i, err)
		}
		if _, dup := zones[kindKey{z.kind, z.zone}]; dup {
			return s, fmt.Errorf("zones[%d].zone: %s is listed twice", i, z.zone)
		}
		zones[kindKey{z.kind, z.zone}] = i
		if j, dup := names[kindKey{z.kind, z.name}]; dup {
			return s, fmt.Errorf("zones[%d].name: %s is the name of zones[%d] too (a name is the zone unless set, without the key of a Spamhaus DQS zone); give each list a name of its own", i, z.name, j)
		}
		names[kindKey{z.kind, z.name}] = i
		z.index = i
		s.zones = append(s.zones, z)
	}
	return s, nil
}

func (sc ScoreConfig) check(s *settings) error {
	// YAML reads .nan and .inf as numbers; a threshold of either would
	// never be reached, and the score would silently never act.
	if sc.Threshold < 0 || math.IsNaN(sc.Threshold) || math.IsInf(sc.Threshold, 0) {
		return fmt.Errorf("threshold %v: must be a number, not negative", sc.Threshold)
	}
	if sc.Threshold == 0 {
		if sc.Action != "" || sc.Reply != "" {
			return errors.New("action: set threshold too, or the score never acts")
		}
		return nil
	}
	reply := sc.Reply
	switch sc.Action {
	case "", "reject":
		s.scoreAction = filters.Reject
		if reply == "" {
			reply = DefaultScoreReply
		}
	case "tempfail":
		s.scoreAction = filters.Tempfail
		if reply == "" {
			reply = DefaultScoreTempfail
		}
	case "quarantine":
		s.scoreAction = filters.Quarantine
		if reply != "" {
			return errors.New("reply: quarantine sends no reply")
		}
		return nil
	default:
		return fmt.Errorf("action %q: want reject, tempfail or quarantine", sc.Action)
	}
	r, text, err := parseReply(reply, s.scoreAction == filters.Reject, scorePlaceholders)
	if err != nil {
		return fmt.Errorf("reply: %w", err)
	}
	s.scoreReply, s.scoreText = r, text
	return nil
}

// Placeholders of the reply templates.
var (
	zonePlaceholders  = []string{"zone", "listed", "code", "reason"}
	scorePlaceholders = []string{"score", "threshold", "zones"}
)

// parseReply parses a reply with placeholders in its text and checks that
// its code fits the action (5xx for reject, 4xx for tempfail). The values
// have no bound of their own (a TXT text, a list of zones) and the text
// is cut to maxReplyText when it is sent (renderReply), so what must fit
// is the reply's own text, without its placeholders: one longer would be
// cut in every reply. The placeholders' names are not sent, and not
// counted.
func parseReply(s string, reject bool, names []string) (filters.Reply, template, error) {
	r, err := filters.ParseReplyTemplate(s)
	if err != nil {
		return r, nil, err
	}
	if reject != (r.Code >= 500) {
		want := "4xx for tempfail"
		if reject {
			want = "5xx for reject"
		}
		return r, nil, fmt.Errorf("%q: the code must be %s", s, want)
	}
	t, err := parseTemplate(r.Text, names)
	if err != nil {
		return r, nil, fmt.Errorf("%q: %w", s, err)
	}
	if n := t.ownLen(); n > maxReplyText {
		return r, nil, fmt.Errorf("%q: its text without the placeholders is %d bytes long, at most %d allowed", s, n, maxReplyText)
	}
	return r, t, nil
}

// zoneName reports whether name (lower case, no final dot) is a host-name
// style zone: labels as a queried domain's (labelsOK), none starting or
// ending with a hyphen. dns.IsDomainName accepts nearly any bytes, so a
// typo ("zen.spamhaus.org, bl.spamcop.net", "bl.example:53") would be a
// list that never answers.
func zoneName(name string) bool {
	if !labelsOK(name) {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	return true
}

func (zc ZoneConfig) check() (*zone, error) {
	z := &zone{score: 1, probe: true, labels: &codeLabels{}}
	name := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(zc.Zone), "."))
	if name == "" {
		return nil, errors.New("zone: missing")
	}
	if !zoneName(name) || len(name) > maxZoneName || !strings.Contains(name, ".") {
		return nil, fmt.Errorf("zone %q: not a DNS zone name such as zen.spamhaus.org", zc.Zone)
	}
	z.zone = name
	z.name = displayName(name)
	if zc.Name != "" {
		shown := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(zc.Name), "."))
		if shown == "" || !zoneName(shown) || len(shown) > maxZoneName {
			return nil, fmt.Errorf("name %q: not a name such as zen or zen.dq.spamhaus.net: letters, digits, hyphens and underscores in labels separated by dots, at most %d characters", zc.Name, maxZoneName)
		}
		z.name = shown
	}
	switch zc.Type {
	case "", "ip":
		z.kind = ipList
		if len(zc.Check) > 0 {
			return nil, errors.New("check: only domain lists check domains; ip lists check the client address")
		}
		switch zc.Family {
		case "", "any":
			z.v4, z.v6 = true, true
		case "ipv4":
			z.v4 = true
		case "ipv6":
			z.v6 = true
		default:
			return nil, fmt.Errorf("family %q: want any, ipv4 or ipv6", zc.Family)
		}
	case "domain":
		z.kind = domainList
		if zc.Family != "" {
			return nil, errors.New("family: only ip lists have an address family")
		}
		z.checks = zc.Check
		if len(z.checks) == 0 {
			z.checks = []string{targetSender, targetHeaderFrom}
		}
		seen := map[string]bool{}
		for _, c := range z.checks {
			switch c {
			case targetSender, targetHeaderFrom, targetHelo:
			default:
				return nil, fmt.Errorf("check %q: want sender, header_from or helo", c)
			}
			if seen[c] {
				return nil, fmt.Errorf("check: %s is given twice", c)
			}
			seen[c] = true
		}
	default:
		return nil, fmt.Errorf("type %q: want ip or domain", zc.Type)
	}
	// In key order, so that which of two bad keys is reported does not
	// depend on map order.
	keys := make([]string, 0, len(zc.Codes))
	for code := range zc.Codes {
		keys = append(keys, code)
	}
	sort.Strings(keys)
	given := map[netip.Prefix]string{}
	for _, code := range keys {
		p, err := parseCode(code)
		if err != nil {
			return nil, fmt.Errorf("codes: %w", err)
		}
		// "127.0.0.2" and "127.0.0.2/32" (or two addresses of one
		// prefix) are one code: with two reasons, the one a listing
		// got would change with map order from start to start.
		if other, ok := given[p]; ok {
			return nil, fmt.Errorf("codes: %q and %q are both %s, given twice", other, code, p)
		}
		given[p] = code
		reason := zc.Codes[code]
		if err := checkReason(reason); err != nil {
			return nil, fmt.Errorf("codes: reason of %q: %w", code, err)
		}
		z.codes = append(z.codes, codeRule{prefix: p, reason: reason})
	}
	// The most specific rule decides, so "127.0.1.0/24: listed domain"
	// and "127.0.1.2: spam domain" can be combined; ties in address
	// order keep it deterministic, as no two rules have one prefix.
	sort.Slice(z.codes, func(i, j int) bool {
		a, b := z.codes[i].prefix, z.codes[j].prefix
		if a.Bits() != b.Bits() {
			return a.Bits() > b.Bits()
		}
		return a.Addr().Less(b.Addr())
	})

	switch zc.Action {
	case "", "reject":
		z.action = actReject
	case "tempfail":
		z.action = actTempfail
	case "tag":
		z.action = actTag
	default:
		return nil, fmt.Errorf("action %q: want reject, tempfail or tag", zc.Action)
	}
	if z.action == actTag {
		for _, code := range keys {
			// The header field quotes the reason (reason="..."), and
			// tag puts an apostrophe and a slash in their place.
			if strings.ContainsAny(zc.Codes[code], `"\`) {
				return nil, fmt.Errorf("codes: reason of %q: '\"' and '\\' cannot be in the quoted reason of the header field", code)
			}
		}
		if zc.Reply != "" {
			return nil, errors.New("reply: only reject and tempfail send a reply, the action is tag")
		}
	} else {
		reply := zc.Reply
		if reply == "" {
			reply = defaultReply(z.kind, z.action)
		}
		r, text, err := parseReply(reply, z.action == actReject, zonePlaceholders)
		if err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
		z.reply, z.text = r, text
	}
	if zc.Score != nil {
		if sc := *zc.Score; sc < 0 || math.IsNaN(sc) || math.IsInf(sc, 0) {
			// A NaN would make every message's sum NaN, which reaches
			// no threshold.
			return nil, fmt.Errorf("score %v: must be a number, not negative", sc)
		}
		if z.action != actTag {
			return nil, errors.New("score: only tag listings add to the score")
		}
		z.score = *zc.Score
	}
	z.txt = zc.TXT
	if zc.Probe != nil {
		z.probe = *zc.Probe
	}
	return z, nil
}

// dqsSuffixes are the parents of Spamhaus's Data Query Service zones,
// which are named <key>.<list>.dq.spamhaus.net (or .com): the first label
// is the customer's access key.
var dqsSuffixes = []string{".dq.spamhaus.net", ".dq.spamhaus.com"}

// displayName returns the name a list of zone is shown by when its
// configuration gives none: the zone itself, but a Spamhaus DQS zone
// without its key label, so that a default reply does not give the key
// to every client it refuses, nor a header field to every recipient.
func displayName(zone string) string {
	for _, suffix := range dqsSuffixes {
		list, ok := strings.CutSuffix(zone, suffix)
		if !ok {
			continue
		}
		// <key>.<list>: a zone with no label before the list's
		// (zen.dq.spamhaus.net) holds no key.
		if _, rest, ok := strings.Cut(list, "."); ok {
			return rest + suffix
		}
	}
	return zone
}

// hide returns s with the zone replaced by the list's name: the texts of
// failed lookups and the probes' query names hold the zone, and go to
// the log, which must not show a key the zone holds either.
//
// The zone is found in any case: DNS names are case-insensitive (RFC
// 4343), and a list's TXT text may write the name asked in capitals, or
// as a resolver that randomises the case of its queries asked it.
func (z *zone) hide(s string) string {
	if z.zone == z.name {
		return s
	}
	// asciiLower keeps every byte where it is, so an index into lower
	// is one into s.
	lower := asciiLower(s)
	var b strings.Builder
	for {
		i := strings.Index(lower, z.zone)
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString(z.name)
		s, lower = s[i+len(z.zone):], lower[i+len(z.zone):]
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s)
	return b.String()
}

// trimZoneStart returns s without the start of the zone (not the whole
// zone, which hide replaces) it ends in, if it does: a text cut to a
// reason's length inside the zone ends so, and hide, finding no zone
// whole there, would leave the key in it.
func (z *zone) trimZoneStart(s string) string {
	if z.zone == z.name {
		return s
	}
	lower := asciiLower(s)
	for n := min(len(z.zone)-1, len(s)); n > 0; n-- {
		if strings.HasSuffix(lower, z.zone[:n]) {
			return s[:len(s)-n]
		}
	}
	return s
}

// asciiLower returns s with ASCII capitals in lower case and every other
// byte as it is.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// hideErr is hide of err's text, for the log.
func (z *zone) hideErr(err error) string {
	if err == nil {
		return ""
	}
	return z.hide(err.Error())
}

func defaultReply(k zoneKind, a zoneAction) string {
	switch {
	case k == ipList && a == actReject:
		return DefaultIPRejectReply
	case k == ipList:
		return DefaultIPTempfailReply
	case a == actReject:
		return DefaultDomainReject
	}
	return DefaultDomainTempfail
}

var (
	loopback8 = netip.MustParsePrefix("127.0.0.0/8")
	// refusalCodes are answers lists give to say "I will not answer
	// you" rather than "listed": Spamhaus answers 127.255.255.252 to
	// 127.255.255.255 for typing errors, public resolvers and queries
	// over quota; URIBL answers 127.0.0.1, which RFC 5782 section 5 says
	// no list may list.
	refusalRange = netip.MustParsePrefix("127.255.255.0/24")
	refusalOne   = netip.MustParseAddr("127.0.0.1")
)

// isRefusal reports whether a is an answer that refuses the query.
func isRefusal(a netip.Addr) bool {
	return refusalRange.Contains(a) || a == refusalOne
}

// parseCode parses a return code written as an address or a prefix
// inside 127.0.0.0/8 that is not a refusal code.
func parseCode(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	var p netip.Prefix
	if strings.Contains(s, "/") {
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Errorf("%q: want an address such as 127.0.0.2 or a prefix such as 127.0.1.0/24", s)
		}
		p = p.Masked()
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return p, fmt.Errorf("%q: want an address such as 127.0.0.2 or a prefix such as 127.0.1.0/24", s)
		}
		p = netip.PrefixFrom(a, 32)
	}
	if !p.Addr().Is4() || p.Bits() < 8 || !loopback8.Contains(p.Addr()) {
		return p, fmt.Errorf("%q: a listing code must be inside 127.0.0.0/8", s)
	}
	if refusalRange.Overlaps(p) || p.Contains(refusalOne) {
		return p, fmt.Errorf("%q: 127.0.0.1 and 127.255.255.0/24 are the codes lists use to refuse queries, never listings", s)
	}
	return p, nil
}

// serverList checks the configured servers, or reads the default ones
// from the resolv.conf file at path.
func serverList(list []string, path string) ([]string, error) {
	if len(list) == 0 {
		set, err := defaultServers(path, "")
		return set.servers, err
	}
	out := make([]string, 0, len(list))
	for i, s := range list {
		s = strings.TrimSpace(s)
		host, port := s, "53"
		if a, err := netip.ParseAddrPort(s); err == nil {
			host, port = a.Addr().String(), strconv.Itoa(int(a.Port()))
		} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			host = s[1 : len(s)-1]
		}
		a, err := netip.ParseAddr(host)
		if err != nil || port == "0" {
			return nil, fmt.Errorf("servers[%d] %q: want an IP address with optional port, e.g. 127.0.0.1:53 or [::1]:53", i, s)
		}
		out = append(out, netJoin(a.String(), port))
	}
	return out, nil
}

// defaultServers reads the servers of the resolv.conf file at path, used
// when none are configured; see readResolvConf for port.
func defaultServers(path, port string) (serverSet, error) {
	set, err := readResolvConf(path, port)
	if err != nil {
		return set, fmt.Errorf("servers: none configured, and %w", err)
	}
	return set, nil
}

func netJoin(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// template is a text with {name} placeholders.
type template []templatePart

type templatePart struct {
	lit  string
	name string // placeholder; "" for a literal
}

// parseTemplate splits s into literals and placeholders, refusing names
// not in allowed: a typo must not reach the client as literal braces.
func parseTemplate(s string, allowed []string) (template, error) {
	var t template
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t = append(t, templatePart{lit: s})
			break
		}
		if i > 0 {
			t = append(t, templatePart{lit: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed { in %q", s)
		}
		name := s[i+1 : i+j]
		ok := false
		for _, a := range allowed {
			ok = ok || a == name
		}
		if !ok {
			return nil, fmt.Errorf("unknown placeholder {%s} (known: {%s})", name, strings.Join(allowed, "}, {"))
		}
		t = append(t, templatePart{name: name})
		s = s[i+j+1:]
	}
	return t, nil
}

// ownLen is the length of the template's literal text.
func (t template) ownLen() int {
	n := 0
	for _, p := range t {
		n += len(p.lit)
	}
	return n
}

func (t template) render(values map[string]string) string {
	var b strings.Builder
	for _, p := range t {
		if p.name == "" {
			b.WriteString(p.lit)
		} else {
			b.WriteString(values[p.name])
		}
	}
	return b.String()
}

// checkReason checks a configured reason of a return code: it goes into
// replies and header fields as it is written, so it must already be what
// sanitize would make of it. TXT texts are made so at run time; a
// configured reason that sanitize changed was shown with '?' for each
// non-ASCII character, or cut, though config check had passed it.
func checkReason(s string) error {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("non-ASCII or control byte 0x%02x at offset %d: a reason must be one line of printable ASCII, as replies and header fields are", c, i)
		}
	}
	if len(s) > maxReason {
		return fmt.Errorf("%d bytes long, at most %d allowed", len(s), maxReason)
	}
	if !clean(s) {
		return errors.New("leading, trailing or repeated blanks, which replies and header fields would not keep")
	}
	return nil
}

// renderReply renders a reply text: the configured text as it is written
// (ParseReply made it one line of printable ASCII) with each value made
// so too, cut to maxReplyText. Only the values are cleaned: the
// configured text's own blanks must reach the client as written.
func (t template) renderReply(values map[string]string) string {
	clean := make(map[string]string, len(values))
	for k, v := range values {
		clean[k] = sanitize(v, maxReplyText)
	}
	text := t.render(clean)
	if len(text) > maxReplyText {
		// ASCII only: a cut splits no character.
		text = text[:maxReplyText]
	}
	return text
}

// Bounds of texts that come from the lists themselves.
const (
	maxReason    = 200 // reason text in headers and replies
	maxReplyText = 400 // what filters.Reply accepts
)

// sanitize makes s one line of printable ASCII of at most max bytes:
// TXT records may hold anything, and replies and header fields may not.
func sanitize(s string, max int) string {
	out, _ := sanitizeCut(s, max)
	return out
}

// sanitizeCut is sanitize, and reports whether text was cut off at max
// bytes: the end of such a text may be part of a longer word, such as
// the first labels of a zone that hide would have replaced whole.
func sanitizeCut(s string, max int) (string, bool) {
	if len(s) <= max && clean(s) {
		return s, false
	}
	var b strings.Builder
	space := false
	cut := false
	for _, r := range s {
		switch {
		case r == '\t' || r == '\r' || r == '\n' || r == ' ':
			space = b.Len() > 0
			continue
		case r < 0x20 || r == 0x7f:
			continue
		case r > 0x7e:
			r = '?'
		}
		if b.Len() >= max {
			// A character is left that would have been kept.
			cut = true
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) > max {
		// A cut after a space would leave it at the end, where clean
		// allows none.
		out = strings.TrimRight(out[:max], " ")
		cut = true
	}
	return out, cut
}

// clean reports whether s is already what sanitize makes of it: printable
// ASCII, no leading, trailing or repeated spaces.
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == ' ' && (i == 0 || i == len(s)-1 || s[i-1] == ' ') {
			return false
		}
	}
	return true
}
