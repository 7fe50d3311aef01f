package classifier

import (
	"context"
	"fmt"
)

// luaClaimMeta sets a store-wide setting only if it is unset (see
// metaClaimer), and returns the value it has, or "" once it set it.
//
// KEYS: meta. ARGV[1] field, ARGV[2] value (not empty).
const luaClaimMeta = luaPrelude + `
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then return held end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if not v then redis.call('HSET', KEYS[1], 'version', 'FORMAT_VERSION') end
return ''
`

var scriptClaimMeta = newScript(luaClaimMeta)

// claimMeta implements metaClaimer: the check and the set are one script,
// which no other client's command overlaps.
func (s *RedisStore) claimMeta(ctx context.Context, key, value string) (string, error) {
	res, err := s.runScripts(ctx, "meta", scriptClaimMeta, [][]any{{"m:" + key, value}}, false)
	if err != nil {
		return "", fmt.Errorf("set meta %s: %w", key, err)
	}
	held, ok := res[0].(string)
	if !ok {
		return "", fmt.Errorf("set meta %s on %s: unexpected script result %v", key, s, res[0])
	}
	return held, nil
}

// luaFinishImport sets a store-wide setting (an import's fingerprint),
// sets others where they are unset (the records of imports the import
// carries), and deletes another (the import's mark, see importFinisher).
//
// KEYS: meta. ARGV[1] field to set, ARGV[2] its value (not empty),
// ARGV[3] field to delete, then a field to set where unset and its value
// (not empty) for each carried record.
const luaFinishImport = luaPrelude + `
for i = 4, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[1], ARGV[3])
if not v then redis.call('HSET', KEYS[1], 'version', 'FORMAT_VERSION') end
return 1
`

var scriptFinishImport = newScript(luaFinishImport)

// finishImport implements importFinisher: one script.
func (s *RedisStore) finishImport(ctx context.Context, own metaEntry, carried []metaEntry) error {
	args := []any{"m:" + own.key, own.value, "m:" + MetaImporting}
	for _, c := range carried {
		args = append(args, "m:"+c.key, c.value)
	}
	_, err := s.runScripts(ctx, "meta", scriptFinishImport, [][]any{args}, false)
	if err != nil {
		return fmt.Errorf("finish import: %w", err)
	}
	return nil
}

// learnedDigests implements digestFinder: one HMGET of the digests hash,
// whose values are "1" (spam) and "2" (ham).
func (s *RedisStore) learnedDigests(ctx context.Context, ds []Digest) ([]Class, error) {
	fields := make([]string, len(ds))
	for i, d := range ds {
		fields[i] = string(d[:])
	}
	var v []any
	err := s.call(ctx, "digests", false, func(ctx context.Context) error {
		var err error
		v, err = s.rdb.HMGet(ctx, s.digests, fields...).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("look up digests: %w", err)
	}
	if len(v) != len(ds) {
		return nil, fmt.Errorf("look up digests on %s: %d values for %d digests", s, len(v), len(ds))
	}
	found := make([]Class, len(ds))
	for i := range v {
		switch v[i] {
		case nil:
		case "1":
			found[i] = Spam
		case "2":
			found[i] = Ham
		default:
			return nil, fmt.Errorf("look up digests on %s: corrupt digest entry %x", s, ds[i][:])
		}
	}
	return found, nil
}
