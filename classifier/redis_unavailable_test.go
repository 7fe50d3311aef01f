package classifier

import "testing"

// redisReply is an error reply of the Redis server, as go-redis gives
// one (a type with a RedisError method).
type redisReply string

func (e redisReply) Error() string { return string(e) }
func (redisReply) RedisError()     {}

// The server states that pass count as the store unavailable, whether
// or not Redis puts "ERR " before them. "ERR max number of clients
// reached" (a server at maxclients) was never matched: go-redis compares
// the prefixes after the "ERR ", and the prefix kept it.
func TestRedisUnavailableReplies(t *testing.T) {
	for _, reply := range []string{
		"ERR max number of clients reached",
		"LOADING Redis is loading the dataset in memory",
		"READONLY You can't write against a read only replica.",
		"ERR WAIT cannot be used with replica instances.",
		"UNBLOCKED force unblock from blocking operation",
	} {
		if !unavailable(redisReply(reply)) {
			t.Errorf("%q: not taken for the store unavailable", reply)
		}
	}
	for _, reply := range []string{"ERR unknown command 'FOO'", "WRONGTYPE Operation against a key holding the wrong kind of value"} {
		if unavailable(redisReply(reply)) {
			t.Errorf("%q: taken for the store unavailable", reply)
		}
	}
}
