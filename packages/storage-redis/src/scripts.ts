import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { feedPointer } from './codec.js';

/**
 * Appends events to one upgrade, atomically with the seq check.
 *
 * The call is packed into few arguments, because every argument costs: ioredis encodes each one on
 * its own, Redis parses each into an object and pushes each into Lua (`tools/bench/storage-redis`
 * measured about 0.7 us of round trip per argument, on a path where a whole append costs ~100 us).
 *
 * KEYS: events, meta, then, each only when its flag says so: feed (single-node mode), index (single
 * mode, first append), snapshot (when a snapshot is written).
 *
 * ARGV[1], the head: `deadline|flags|expectedSeq|newLastSeq|fastBytes|feedBytes|<fast><feed><rest>`:
 * - the deadline in ms on the server clock (0 = none);
 * - flags, the sum of 1 (feed key given), 2 (index key given), 4 (snapshot key given) and 8 (`rare`
 *   given, below);
 * - fast, `fastBytes` long: the list row's fields every append moves (`lastSeq|overallPercentage|updatedAt`);
 * - feed, `feedBytes` long (0 without a feed key): the feed entry's one field, `<first seq>|<n>|<upgradeId>`;
 * - rest: `<rare>|` when flag 8 is set, then `<upgradeId>|<eventId of the first event>` to the end.
 *   `rare` is `feedMaxLen,ttl,maxEvents,score` (feedMaxLen: trim the feed to about this many entries
 *   now; ttl seconds; maxEvents kept; score, the index score).
 * The common path only captures the four numbers and cuts fast and feed out by length: Lua's pattern
 * matcher costs ~0.1 us per capture, and the rest is read only on the paths that need it (the first
 * append, a retry, a conflict, retention). Numbers are decimal strings without leading zeros (what
 * `String(n)` gives); an upgrade id cannot hold `|`; the eventId comes last, so that neither needs
 * escaping.
 * ARGV[2]: the batch (the JSON array of the call's events). ARGV[3], optional: the list row JSON
 * (absent or '' = keep). ARGV[4]: the snapshot JSON, read only when the snapshot key is given (flag 4).
 *
 * The batch is stored as ONE stream entry, id `0-<seq of its last event>`, field `b` (the JSON array).
 * The entry holding seq s is therefore the first entry with an id >= `0-s`.
 *
 * Returns 1 when appended; otherwise `{code, storedSeq}`: 2 already appended by an earlier attempt of this same call
 * (idempotent retry: the stored seq is at least `expectedSeq + n`, since later appends may have run
 * after it and before the re-send, and the entry holding seq `expectedSeq + 1` holds the same eventId at that seq; this
 * also reads entries of the earlier one-event-per-entry layout, field `e`); 0 CONFLICT; -1 refused
 * because the deadline passed before it ran; -2 (with Redis' error) the events entry could not be
 * written because the stream disagrees with `lastSeq` (damage): nothing is written.
 *
 * The deadline is read off the feed entry's id in single-node mode (see the script); a Cluster append,
 * which has no feed key, asks TIME.
 *
 * Seqs are written as the strings the client sends; the rare paths that compute with them (retry
 * check, retention) use Lua numbers and write them with `%d`, exact for any seq below 2^53.
 */
export const APPEND_LUA = `
local head = ARGV[1]
local deadline, flags, expectedText, newLast, fastLen, feedLen, at = string.match(head, '^(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|(%d+)|()')
if not deadline then return redis.error_reply('ERR progress append: malformed head') end
local feedAt = at + tonumber(fastLen)
local fast = string.sub(head, at, feedAt - 1)
local restAt = feedAt + tonumber(feedLen)
local feedKey, indexKey, snapKey
if flags ~= '1' and flags ~= '0' then
  flags = tonumber(flags)
  local k = 3
  if flags % 2 == 1 then feedKey = KEYS[k]; k = k + 1 end
  if math.floor(flags / 2) % 2 == 1 then indexKey = KEYS[k]; k = k + 1 end
  if math.floor(flags / 4) % 2 == 1 then snapKey = KEYS[k] end
elseif flags == '1' then
  feedKey = KEYS[3]
end
local lastText = redis.call('HGET', KEYS[2], 'lastSeq') or '0'
-- The rest of the head, read only where it is needed: anything but a plain append (flags other than
-- 0 or 1), the first append (its epoch) and a conflict or retry (the eventId).
local rare = type(flags) == 'number' or expectedText == '0'
local feedMaxLen, ttl, maxEvents, score = '0', '0', '0', '0'
local upgradeId, eventId
if rare or lastText ~= expectedText then
  local rest = string.sub(head, restAt)
  if type(flags) == 'number' and flags >= 8 then
    local bar
    feedMaxLen, ttl, maxEvents, score, bar = string.match(rest, '^(%d+),(%d+),(%d+),(%d+)|()')
    if not feedMaxLen then return redis.error_reply('ERR progress append: malformed head') end
    rest = string.sub(rest, bar)
  end
  local bar = string.find(rest, '|', 1, true)
  if not bar then return redis.error_reply('ERR progress append: malformed head') end
  upgradeId = string.sub(rest, 1, bar - 1)
  eventId = string.sub(rest, bar + 1)
end
-- The common path compares and writes seqs as the strings the client sent: no number parsing or
-- formatting, which showed up in Redis' profile.
if lastText ~= expectedText then
  local last = tonumber(lastText)
  local expected = tonumber(expectedText)
  local firstText = string.format('%d', expected + 1)
  if last >= tonumber(newLast) then
    local found = redis.call('XRANGE', KEYS[1], '0-' .. firstText, '+', 'COUNT', 1)
    if found[1] then
      local f = found[1][2]
      for j = 1, #f - 1, 2 do
        if f[j] == 'b' or f[j] == 'e' then
          local ok, v = pcall(cjson.decode, f[j + 1])
          if ok and type(v) == 'table' then
            if f[j] == 'e' then v = {v} end
            for _, ev in ipairs(v) do
              if type(ev) == 'table' and ev.seq == expected + 1 then
                if ev.eventId == eventId then return {2, last} end
                break
              end
            end
          elseif not ok and string.find(f[j + 1], '{"eventId":"' .. eventId .. '","seq":' .. firstText .. ',', 1, true) then
            -- cjson refuses some JSON that JSON.stringify writes (a lone surrogate, deep nesting):
            -- then the event is found by its start as the client writes it (eventId, then seq).
            return {2, last}
          end
        end
      end
    end
  end
  return {0, last}
end
-- The deadline. In single-node mode the feed entry's id carries the server clock: its ms is never
-- below the time now, so an id at or before the deadline proves the script runs in time, with no TIME
-- call (one command less on the hot path). Past it, TIME decides (the id can run ahead after the
-- clock stepped back), and a refusal takes the entry back out: nobody can have read it. A Cluster
-- append (no feed key) asks TIME.
local feedId = nil
local suspect = false
if feedKey then
  -- Trimmed only when the client asks (every few appends): the trim costs more than the entry.
  local feed = string.sub(head, feedAt, restAt - 1)
  if feedMaxLen ~= '0' then
    feedId = redis.call('XADD', feedKey, 'MAXLEN', '~', feedMaxLen, '*', 'p', feed)
  else
    feedId = redis.call('XADD', feedKey, '*', 'p', feed)
  end
  if deadline ~= '0' then
    local ms = string.sub(feedId, 1, string.find(feedId, '-', 1, true) - 1)
    -- Compared as text when the lengths agree (any ms from 2001 to 2286 has 13 digits).
    if #ms == #deadline then suspect = ms > deadline else suspect = tonumber(ms) > tonumber(deadline) end
  end
else
  suspect = deadline ~= '0'
end
if suspect then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline) then
    if feedId then redis.call('XDEL', feedKey, feedId) end
    return {-1, tonumber(lastText)}
  end
end
local events = KEYS[1]
-- The first append indexes the upgrade. An index key holding another kind of value fails it with
-- nothing written (the feed entry is taken back out): a script's writes are not rolled back.
if indexKey then
  local indexed = redis.pcall('ZADD', indexKey, score, upgradeId)
  if type(indexed) == 'table' and indexed.err then
    if feedId then redis.call('XDEL', feedKey, feedId) end
    return redis.error_reply(indexed.err)
  end
end
-- The stream disagreeing with lastSeq (an entry at or past the new id) is damage, not a conflict:
-- report it with nothing written (the feed and index entries are taken back out).
local added = redis.pcall('XADD', events, '0-' .. newLast, 'b', ARGV[2])
if type(added) == 'table' and added.err then
  if feedId then redis.call('XDEL', feedKey, feedId) end
  if indexKey then redis.call('ZREM', indexKey, upgradeId) end
  return {-2, added.err}
end
local row = ARGV[3]
if row and row ~= '' then
  redis.call('HSET', KEYS[2], 'lastSeq', newLast, 'fast', fast, 'row', row)
else
  redis.call('HSET', KEYS[2], 'lastSeq', newLast, 'fast', fast)
end
if not rare then return 1 end
-- The upgrade's epoch: a watcher that sees it change knows the upgrade was deleted and re-created.
if expectedText == '0' then redis.call('HSET', KEYS[2], 'epoch', eventId) end
local snapSeq = nil
if snapKey then
  redis.call('SET', snapKey, ARGV[4])
  redis.call('HSET', KEYS[2], 'snapSeq', newLast)
  snapSeq = tonumber(newLast)
end
if maxEvents ~= '0' then
  local last = tonumber(newLast)
  snapSeq = snapSeq or tonumber(redis.call('HGET', KEYS[2], 'snapSeq') or '0')
  local cut = math.min(snapSeq, last - tonumber(maxEvents))
  local trimmed = tonumber(redis.call('HGET', KEYS[2], 'trimmed') or '0')
  if cut > trimmed then
    redis.call('XTRIM', events, 'MINID', string.format('0-%d', cut + 1))
    redis.call('HSET', KEYS[2], 'trimmed', string.format('%d', cut))
  end
end
if ttl ~= '0' then
  redis.call('EXPIRE', events, ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
  if snapKey then redis.call('EXPIRE', snapKey, ttl) end
end
-- A number, not a table: building the reply table is measurable on this path.
return 1
`;

/**
 * The head of an append (ARGV[1] of {@link APPEND_LUA}) without its deadline, which the sender puts
 * in front when it sends (`${deadline}${head}`; 0 = none). `flags` is the keys' flags (1, 2, 4; the
 * 8 for `rare` is added here); `rare` is '' or `feedMaxLen,ttl,maxEvents,score`; `fast` the list
 * row's `lastSeq|overallPercentage|updatedAt`. With flag 1 (the feed key given) the head carries the
 * feed entry's field. The one place that writes the format the script parses. The
 * lengths are in bytes (what Lua's `string.sub` counts); the `|` before the eventId keeps a lone
 * surrogate at the end of the upgrade id from pairing with one at its start.
 */
export function appendHead(flags: number, expectedSeq: number, n: number, rare: string, upgradeId: string, fast: string, eventId: string): string {
  const last = expectedSeq + n;
  const feed = flags & 1 ? feedPointer(upgradeId, expectedSeq + 1, n) : '';
  const rest = rare ? `${rare}|${upgradeId}|${eventId}` : `${upgradeId}|${eventId}`;
  return `|${rare ? flags + 8 : flags}|${expectedSeq}|${last}|${Buffer.byteLength(fast)}|${Buffer.byteLength(feed)}|${fast}${feed}${rest}`;
}

/** The SHA1 of {@link APPEND_LUA}, for EVALSHA. */
export const APPEND_SHA = createHash('sha1').update(APPEND_LUA).digest('hex');

/**
 * Reads what `load()` needs in one atomic step: `{lastSeq, snapSeq, snapshot JSON, tail entries}`,
 * the tail being the entries from the one holding `snapSeq + 1` on (the caller drops events <= snapSeq
 * inside it; about `snapshotEvery` events). Nil when absent.
 * KEYS: events, meta, snapshot.
 */
export const LOAD_LUA = `
local meta = redis.call('HMGET', KEYS[2], 'lastSeq', 'snapSeq')
if not meta[1] then return false end
local snapSeq = tonumber(meta[2] or '0')
local snap = ''
if snapSeq > 0 then snap = redis.call('GET', KEYS[3]) or '' end
local tail = redis.call('XRANGE', KEYS[1], string.format('0-%d', snapSeq + 1), '+')
return {meta[1], string.format('%d', snapSeq), snap, tail}
`;

/** Deletes one upgrade. KEYS: events, meta, snapshot [, index]; ARGV: upgradeId. Returns 1 when it existed. */
export const DELETE_LUA = `
local existed = redis.call('EXISTS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
if #KEYS >= 4 then redis.call('ZREM', KEYS[4], ARGV[1]) end
return existed
`;

/**
 * Drops index entries of upgrades that are gone (expired by retention), each only if its meta is
 * still missing now: an upgrade created again under the same id since `list()` read it stays.
 * KEYS: index, then the meta key of each candidate; ARGV: the candidates' ids. Returns how many went.
 * Single-node mode only (the keys span slots).
 */
export const PRUNE_LUA = `
local n = 0
for i = 1, #ARGV do
  if redis.call('EXISTS', KEYS[i + 1]) == 0 then n = n + redis.call('ZREM', KEYS[1], ARGV[i]) end
end
return n
`;

/** A stream entry as ioredis returns it: `[id, [field, value, ...]]`. */
export type StreamEntry = [id: string, fields: string[]];

/** What `progressLoad` returns. */
export type LoadReply = [lastSeq: string, snapSeq: string, snapshot: string, tail: StreamEntry[]] | null;

/** The read and delete commands {@link defineScripts} adds (ioredis sends EVALSHA and falls back on NOSCRIPT). The append is sent by `append-command.ts`. */
export interface ScriptCommands {
  progressLoadV1(numKeys: number, ...args: string[]): Promise<LoadReply>;
  progressDeleteV1(numKeys: number, ...args: string[]): Promise<number>;
  progressPruneV1(numKeys: number, ...args: string[]): Promise<number>;
}

/** Registers the scripts on a client (idempotent) and returns it typed with them. */
export function defineScripts<C extends Redis | Cluster>(client: C): C & ScriptCommands {
  const c = client as C & Partial<ScriptCommands>;
  if (typeof c.progressLoadV1 !== 'function') client.defineCommand('progressLoadV1', { lua: LOAD_LUA });
  if (typeof c.progressDeleteV1 !== 'function') client.defineCommand('progressDeleteV1', { lua: DELETE_LUA });
  if (typeof c.progressPruneV1 !== 'function') client.defineCommand('progressPruneV1', { lua: PRUNE_LUA });
  return client as C & ScriptCommands;
}
