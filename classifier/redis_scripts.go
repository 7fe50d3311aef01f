package classifier

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The Redis store changes counts only through these Lua scripts. Redis runs
// a script atomically: no other command runs while it does, and its writes
// reach the AOF and the replicas as one unit, so a message is counted fully
// or not at all whatever happens to the client. A script is not rolled
// back if it fails half way, though, so every script reads and checks all
// it needs first and writes only when nothing can fail any more.
//
// Each script checks the store's format version in the meta hash and sets
// it on the first write, as the bbolt store does in its meta bucket.
//
// Counts of a token are the text "SPAM HAM LASTSEEN" (decimal): readable
// with redis-cli, and parsed by the scripts and by Go the same way.
//
// Every script gets the same KEYS: meta, tokens, digests, log, features.
// All share the prefix's hash tag, so in a Cluster they are in one slot.

// luaPrelude is shared by the scripts: the version check and helpers.
// KEYS[1] is always the meta hash.
const luaPrelude = `
local MAX = 4294967295
local v = redis.call('HGET', KEYS[1], 'version')
if v and v ~= 'FORMAT_VERSION' then
  return redis.error_reply('sluice store format version ' .. v .. ', want FORMAT_VERSION')
end
-- No version is a store never written, unless the meta hash alone is gone
-- (an evicting maxmemory-policy drops whole keys): writing would start
-- the totals again from 0 under counts that go on, and nothing would say.
if not v and redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then
  return redis.error_reply('sluice store has tokens or digests but no meta hash (' .. KEYS[1] .. '): evicted? see maxmemory-policy in docs/scaling.md')
end
local function parse(val)
  local s, h, d = string.match(val, '^(%d+) (%d+) (%d+)$')
  if not s then return nil end
  return tonumber(s), tonumber(h), tonumber(d)
end
local function clamp(n)
  if n < 0 then return 0 end
  if n > MAX then return MAX end
  return n
end
local function fmt(s, h, d)
  return string.format('%d %d %d', s, h, d)
end
-- totals returns the spam and ham totals, or nil if one is not a count
-- that Go reads back (the scripts write them before they know, so they
-- must check first).
local function totals()
  local t = redis.call('HMGET', KEYS[1], 'spam', 'ham')
  local out = {}
  for i = 1, 2 do
    local x = t[i] or '0'
    if not string.match(x, '^%d+$') or tonumber(x) > MAX then return nil end
    out[i] = tonumber(x)
  end
  return out[1], out[2]
end
-- Commands take at most CHUNK fields at a time: unpack is bounded by the
-- Lua stack, and one HMGET or HSET of many fields costs far less than a
-- call per field.
local CHUNK = 500
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #part do out[i + j - 1] = part[j] end
  end
  return out
end
local function hset(key, pairs)
  for i = 1, #pairs, 2 * CHUNK do
    redis.call('HSET', key, unpack(pairs, i, math.min(i + 2 * CHUNK - 1, #pairs)))
  end
end
-- nextgen returns the store's generation ('0' if none) and a new one:
-- lookups compare it with that of their cached counts (see redisCache).
-- The server's clock makes a generation unique even across a restart or a
-- failover that lost writes; one more than the last keeps it rising if the
-- clock goes back.
local function nextgen()
  local t = redis.call('TIME')
  local g = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local prev = redis.call('HGET', KEYS[1], 'gen') or '0'
  local last = tonumber(prev) or 0
  if g <= last then g = last + 1 end
  return prev, g
end
-- bump gives the store a new generation without a change log entry:
-- caches that see it start over.
local function bump()
  local _, g = nextgen()
  redis.call('HSET', KEYS[1], 'gen', string.format('%d', g))
end
-- learned raises the learn generation, 'lgen' (see Store.WalkLearned):
-- called by every write of the digests or features hashes.
local function learned()
  redis.call('HINCRBY', KEYS[1], 'lgen', 1)
end
local function hdel(key, fields)
  for i = 1, #fields, CHUNK do
    redis.call('HDEL', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
  end
end
`

// luaLearn learns or unlearns one message.
//
// KEYS: meta, tokens, digests, log, features.
// ARGV[1] digest (32 raw bytes), ARGV[2] date (YYYYMMDD), ARGV[3..14] the
// plan for each class the message may have been learned in before (none,
// spam, ham): outcome, class to remove, class to add, class recorded
// afterwards; ARGV[15] the message's encoded n-gram features ("" if none);
// ARGV[16] the tokenizer dialect of the tokens ("" if not checked);
// ARGV[17..] the tokens. The plans come from planLearn, so the script
// cannot disagree with the bbolt store on what an op does.
//
// The features go in the features hash, under the digest, with the same
// rules as the bbolt store's digest values: a new message keeps the
// features it comes with (none if it has none); a message learned again in
// its class takes the op's features if the op has some; a moved
// message takes the op's features, or keeps its own if the op has none;
// an unlearned message loses them with its digest.
//
// A message that changes counts gets the store a new generation and
// appends the new counts of its tokens to the change log, a stream whose
// entry IDs are the generations ("GEN-0"), so that the other hosts' caches
// follow it without reading the tokens again (see redisCache). An entry's
// fields: p, the generation before; c, the changes, one "LEN:TOKEN SPAM
// HAM LASTSEEN\n" per token ("0 0 0" for a token now gone). The stream
// keeps about LOG_LEN entries.
//
// A store marked by an import that has not finished (the meta field of
// MetaImporting, see markImporting) learns nothing: the script returns the
// error reply "SLUICEIMPORTING MARK" (redisImportUnfinished, then the
// mark's value) before it writes, for every op, as the bbolt store's
// learn transaction does
// (see errLearnDuringImport). The import checked the store for its
// messages before its first write; a message learned after would be
// counted again by the import. Read in the script, which no other
// client's command overlaps, no import marks the store between the check
// and the writes. The mark is in the meta hash, KEYS[1]: no other key.
//
// A store whose dialect (MetaDialect, in the meta hash) is not the op's
// learns nothing either: the script returns the error reply
// "SLUICEDIALECT DIALECT" (redisLearnDialect, then the store's dialect),
// as the bbolt store refuses such an op (see errLearnDialect).
//
// Returns the outcome.
const luaLearn = luaPrelude + `
local mark = redis.call('HGET', KEYS[1], 'm:IMPORTING_KEY')
if mark then
  return redis.error_reply('IMPORT_UNFINISHED_ERR ' .. mark)
end
if ARGV[16] ~= '' then
  local dialect = redis.call('HGET', KEYS[1], 'm:DIALECT_KEY')
  if not dialect or dialect == '' then dialect = 'DIALECT_SLUICE' end
  if dialect ~= ARGV[16] then
    return redis.error_reply('LEARN_DIALECT_ERR ' .. dialect)
  end
end
-- Anything but the two classes is corrupt: taken for "not learned", the
-- message would be counted again.
local dv = redis.call('HGET', KEYS[3], ARGV[1])
local prev = 0
if dv == '1' then prev = 1
elseif dv == '2' then prev = 2
elseif dv then return redis.error_reply('corrupt digest entry')
end
local base = 3 + prev * 4
local outcome = tonumber(ARGV[base])
local remove = tonumber(ARGV[base + 1])
local add = tonumber(ARGV[base + 2])
local record = tonumber(ARGV[base + 3])
local date = tonumber(ARGV[2])
if remove ~= 0 or add ~= 0 then
  local ts, th = totals()
  if not ts then
    return redis.error_reply('corrupt message counts')
  end
  -- The new generation must also follow the log's last entry (an ID that
  -- does not would make XADD fail after the writes). pcall: a user whose
  -- ACL has no stream commands learns without the log (an error reply is
  -- a table without [1]).
  local prevgen, g = nextgen()
  local top = redis.pcall('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
  if top[1] then
    local ms = tonumber(string.match(top[1][1], '^(%d+)')) or 0
    if g <= ms then g = ms + 1 end
  end
  local changes = {}
  local toks = {}
  for i = 17, #ARGV do toks[#toks + 1] = ARGV[i] end
  -- Read and check every token first: nothing is written if one is corrupt.
  local vals = hmget(KEYS[2], toks)
  local sets, dels = {}, {}
  for i, tok in ipairs(toks) do
    local val = vals[i]
    -- Unlearning a token the store does not know changes nothing.
    if val or add ~= 0 then
      local s, h, d = 0, 0, 0
      if val then
        s, h, d = parse(val)
        if not s then
          return redis.error_reply('corrupt counts of token ' .. tok)
        end
      end
      if remove == 1 then s = clamp(s - 1) elseif remove == 2 then h = clamp(h - 1) end
      if add == 1 then s = clamp(s + 1) elseif add == 2 then h = clamp(h + 1) end
      if date > d then d = date end
      if s == 0 and h == 0 then
        dels[#dels + 1] = tok
        changes[#changes + 1] = #tok .. ':' .. tok .. ' 0 0 0\n'
      else
        local val = fmt(s, h, d)
        sets[#sets + 1] = tok
        sets[#sets + 1] = val
        changes[#changes + 1] = #tok .. ':' .. tok .. ' ' .. val .. '\n'
      end
    end
  end
  hset(KEYS[2], sets)
  hdel(KEYS[2], dels)
  if remove == 1 then ts = clamp(ts - 1) elseif remove == 2 then th = clamp(th - 1) end
  if add == 1 then ts = clamp(ts + 1) elseif add == 2 then th = clamp(th + 1) end
  redis.call('HSET', KEYS[1], 'spam', string.format('%d', ts), 'ham', string.format('%d', th))
  local gs = string.format('%d', g)
  redis.call('HSET', KEYS[1], 'gen', gs)
  -- pcall: a failure here must not stop the script after its writes; a
  -- missing entry only makes the caches start over.
  redis.pcall('XADD', KEYS[4], 'MAXLEN', '~', 'LOG_LEN', gs .. '-0', 'p', prevgen, 'c', table.concat(changes))
end
local feats = ARGV[15]
if record == 0 then
  if prev ~= 0 then
    redis.call('HDEL', KEYS[3], ARGV[1])
    redis.call('HDEL', KEYS[5], ARGV[1])
    learned()
  end
elseif record ~= prev then
  learned()
  redis.call('HSET', KEYS[3], ARGV[1], tostring(record))
  if feats ~= '' then
    redis.call('HSET', KEYS[5], ARGV[1], feats)
  elseif prev == 0 then
    -- A new message has only the features it comes with. An older
    -- sluice, which knows no features hash, may have unlearned it and
    -- left some behind.
    redis.call('HDEL', KEYS[5], ARGV[1])
  end
elseif outcome == OUTCOME_ALREADY_LEARNED and feats ~= '' and redis.call('HGET', KEYS[5], ARGV[1]) ~= feats then
  -- Compared first: a folder trained again every day must not rewrite
  -- (and replicate, and append to the AOF) every message's features.
  redis.call('HSET', KEYS[5], ARGV[1], feats)
  learned()
end
if not v then redis.call('HSET', KEYS[1], 'version', 'FORMAT_VERSION') end
return outcome
`

// luaAdd adds a raw batch (import): counts are summed, the later last-seen
// day kept, digests set with their features.
//
// KEYS: meta, tokens, digests, log, features.
// ARGV[1], ARGV[2] the spam and ham totals to add; ARGV[3] the number of
// records n; then n times TOKEN SPAM HAM LASTSEEN; then triples of DIGEST
// CLASS FEATURES up to the end, FEATURES "" for a digest without: as in
// the bbolt store, setting a digest replaces its features, so it then has
// none.
//
// Returns the number of records written.
const luaAdd = luaPrelude + `
local ts, th = totals()
if not ts then
  return redis.error_reply('corrupt message counts')
end
local n = tonumber(ARGV[3])
local toks = {}
for i = 0, n - 1 do toks[i + 1] = ARGV[4 + i * 4] end
local vals = hmget(KEYS[2], toks)
local cur = {}
for i, tok in ipairs(toks) do
  if vals[i] and not cur[tok] then
    local s, h, d = parse(vals[i])
    if not s then
      return redis.error_reply('corrupt counts of token ' .. tok)
    end
    cur[tok] = {s, h, d}
  end
end
local sets = {}
local written = 0
for i, tok in ipairs(toks) do
  local at = 4 + (i - 1) * 4
  local c = cur[tok] or {0, 0, 0}
  local s = clamp(c[1] + tonumber(ARGV[at + 1]))
  local h = clamp(c[2] + tonumber(ARGV[at + 2]))
  local d = math.max(c[3], tonumber(ARGV[at + 3]))
  -- A token repeated within the batch sums as well; HSET keeps the
  -- last value given for a field.
  cur[tok] = {s, h, d}
  if s ~= 0 or h ~= 0 then
    sets[#sets + 1] = tok
    sets[#sets + 1] = fmt(s, h, d)
    written = written + 1
  end
end
hset(KEYS[2], sets)
local digs = {}
-- The last features given for a digest win, as its last class does.
local last, order = {}, {}
for i = 4 + n * 4, #ARGV - 2, 3 do
  digs[#digs + 1] = ARGV[i]
  digs[#digs + 1] = ARGV[i + 1]
  if not last[ARGV[i]] then order[#order + 1] = ARGV[i] end
  last[ARGV[i]] = ARGV[i + 2]
end
local fsets, fdels = {}, {}
for _, d in ipairs(order) do
  if last[d] == '' then
    fdels[#fdels + 1] = d
  else
    fsets[#fsets + 1] = d
    fsets[#fsets + 1] = last[d]
  end
end
hset(KEYS[3], digs)
hset(KEYS[5], fsets)
hdel(KEYS[5], fdels)
if #order > 0 then learned() end
ts = clamp(ts + tonumber(ARGV[1]))
th = clamp(th + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'spam', string.format('%d', ts), 'ham', string.format('%d', th))
bump()
if not v then redis.call('HSET', KEYS[1], 'version', 'FORMAT_VERSION') end
return written
`

// luaPrune deletes the candidate tokens that still match the criteria:
// between the scan that found them and this script, training may have
// counted them again.
//
// KEYS: meta, tokens.
// ARGV[1] before (0: no age limit), ARGV[2] max count (0: no count
// limit), ARGV[3..] the candidates.
//
// Returns the number of tokens deleted.
const luaPrune = luaPrelude + `
local before, maxc = tonumber(ARGV[1]), tonumber(ARGV[2])
local doomed = {}
local cands = {}
for i = 3, #ARGV do cands[#cands + 1] = ARGV[i] end
local vals = hmget(KEYS[2], cands)
for i = 3, #ARGV do
  local val = vals[i - 2]
  if val then
    local s, h, d = parse(val)
    if not s then
      return redis.error_reply('corrupt counts of token ' .. ARGV[i])
    end
    local old = before ~= 0 and d ~= 0 and d < before
    local rare = maxc ~= 0 and s + h <= maxc
    local match
    if before ~= 0 and maxc ~= 0 then match = old and rare
    elseif before ~= 0 then match = old
    else match = rare end
    if match then doomed[#doomed + 1] = ARGV[i] end
  end
end
hdel(KEYS[2], doomed)
if #doomed > 0 then bump() end
return #doomed
`

// luaDropFeatures deletes the features of the given digests that are
// learned and have features; the digests stay. It raises the learn
// generation if it deleted any, and leaves the generation of the counts
// ('gen') alone: no token changed, and the caches need not start over.
// A store never written has nothing to drop, and stays unwritten.
//
// KEYS: meta, tokens, digests, log, features. ARGV: the digests.
//
// Returns the number of features deleted.
const luaDropFeatures = luaPrelude + `
local gone = {}
for i = 1, #ARGV do
  if redis.call('HEXISTS', KEYS[3], ARGV[i]) == 1 and redis.call('HEXISTS', KEYS[5], ARGV[i]) == 1 then
    gone[#gone + 1] = ARGV[i]
  end
end
hdel(KEYS[5], gone)
if #gone > 0 then learned() end
return #gone
`

// luaSetMeta sets (or with an empty value deletes) a store-wide setting.
// A value may be large and binary (the n-gram model, MetaModel, is about
// 4 MB of float32s): Lua strings hold any bytes, NULs included, and Redis
// takes bulk strings up to proto-max-bulk-len (512 MB by default).
//
// KEYS: meta. ARGV[1] field, ARGV[2] value.
const luaSetMeta = luaPrelude + `
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
if not v then redis.call('HSET', KEYS[1], 'version', 'FORMAT_VERSION') end
return 1
`

// luaSetModel writes the n-gram model and its id, unless the store has a
// model fitted at a later learn generation (see Store.SetModel). The
// generation of the stored model is the meta field 'mgen'.
//
// KEYS: meta. ARGV[1] the learn generation the model was fitted at,
// ARGV[2] the model, ARGV[3] its id (both "": no model).
//
// Returns 1 if it wrote, 0 if a later model stays.
const luaSetModel = luaPrelude + `
local gen = tonumber(ARGV[1])
if not gen then
  return redis.error_reply('bad model generation ' .. ARGV[1])
end
local cur = tonumber(redis.call('HGET', KEYS[1], 'mgen') or '0') or 0
if cur > gen then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'm:MODEL_BLOB_KEY', 'm:MODEL_ID_KEY')
else
  redis.call('HSET', KEYS[1], 'm:MODEL_BLOB_KEY', ARGV[2], 'm:MODEL_ID_KEY', ARGV[3])
end
redis.call('HSET', KEYS[1], 'mgen', ARGV[1])
if not v then redis.call('HSET', KEYS[1], 'version', 'FORMAT_VERSION') end
return 1
`

// redisLogLen is about how many learned messages the change log keeps
// (each with all its tokens: from a few kB to 430 kB for a message of the
// tokenizer's 20,000 tokens, see docs/scaling.md). A cache more than that
// behind starts over.
const redisLogLen = 256

// redisImportUnfinished begins the error reply of a learn script that
// found the store marked by an import that has not finished; the mark
// follows, after a space (see luaLearn and RedisStore.Learn).
const redisImportUnfinished = "SLUICEIMPORTING"

// redisLearnDialect begins the error reply of a learn script that
// refused an op of another dialect than the store's; the store's dialect
// follows, after a space (see luaLearn and RedisStore.Learn).
const redisLearnDialect = "SLUICEDIALECT"

// redisFormatVersion is the layout of the keys; scripts refuse a store of
// another version.
const redisFormatVersion = "1"

// Compiled scripts. go-redis computes their SHA-1 once.
var (
	scriptLearn    = newScript(luaLearn)
	scriptAdd      = newScript(luaAdd)
	scriptPrune    = newScript(luaPrune)
	scriptDrop     = newScript(luaDropFeatures)
	scriptSetMeta  = newScript(luaSetMeta)
	scriptSetModel = newScript(luaSetModel)
)

func newScript(src string) *redis.Script {
	src = strings.ReplaceAll(src, "LOG_LEN", strconv.Itoa(redisLogLen))
	src = strings.ReplaceAll(src, "OUTCOME_ALREADY_LEARNED", strconv.Itoa(int(AlreadyLearned)))
	src = strings.ReplaceAll(src, "MODEL_BLOB_KEY", MetaModel)
	src = strings.ReplaceAll(src, "MODEL_ID_KEY", MetaModelID)
	src = strings.ReplaceAll(src, "IMPORTING_KEY", MetaImporting)
	src = strings.ReplaceAll(src, "IMPORT_UNFINISHED_ERR", redisImportUnfinished)
	src = strings.ReplaceAll(src, "LEARN_DIALECT_ERR", redisLearnDialect)
	src = strings.ReplaceAll(src, "DIALECT_KEY", MetaDialect)
	src = strings.ReplaceAll(src, "DIALECT_SLUICE", string(DialectSluice))
	return redis.NewScript(strings.ReplaceAll(src, "FORMAT_VERSION", redisFormatVersion))
}
