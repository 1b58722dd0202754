import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { feedPointer } from './codec.js';

/**
 * Appends events to one upgrade, atomically with the seq check.
 *
 * KEYS: events, meta, then, each only when its flag says so: feed (single-node mode), index (single
 * mode, first append), the upgrade's deleted runs (first append: see DELETE_LUA), and,
 * when a snapshot is written, the snapshot key and the staged snapshot's key (see below).
 *
 * ARGV, each value its own argument, so that the script's common path reads them without parsing:
 * 1. the deadline in ms on the server clock (0 = none);
 * 2. flags, the sum of 1 (feed key given), 2 (index key given), 4 (snapshot key given), 8 (`rare`
 *    given, in ARGV[7]), 16 (the deleted runs' key given), 32 (the run given, in ARGV[7]) and 64
 *    (that run escaped);
 * 3. expectedSeq; 4. the new lastSeq;
 * 5. fast: the list row's fields every append moves (`lastSeq|overallPercentage|updatedAt`);
 * 6. feed: the feed entry's one field, `<first seq>|<n>|<upgradeId>` ('' without a feed key);
 * 7. rest: `<rare>|` when flag 8 is set, then `<upgradeId>|<eventId of the first event>`, then
 *    `|<epoch>` when flag 32 is set.
 *    `rare` is `feedMaxLen,ttl,maxEvents,score` (feedMaxLen: trim the feed to about this many entries
 *    now; ttl seconds; maxEvents kept; score, the index score). Read only on the paths that need it
 *    (the first append, a retry, a conflict, retention). An upgrade id cannot hold `|`; the eventId
 *    comes last, so that neither needs escaping;
 * 8. the batch (the JSON array of the call's events);
 * 9. optional: the list row JSON (absent or '' = keep);
 * 10. a first append (flag 16): the call's own token, after the row ('' or not), kept in the meta
 *    (`token`) with the epoch: a delete records it with the epoch (see DELETE_LUA).
 *
 * Flag 32 (the run given): ARGV[7] ends with `|<epoch>`, the upgrade's epoch (the eventId of its seq
 * 1) as the client knows it, from its own first append or a load(). Another epoch in the meta (the
 * upgrade deleted and created again since), or none, is a CONFLICT whatever the seqs
 * (`{0, storedSeq, 'run'}`). Flags 33 and 32 are read as text, as 1 and 0 are: the common path.
 * An eventId may hold `|`, and a suffix compare can match two different epochs when one does
 * (`x|b` and `b`, or `b` and `a|b` after an eventId `a`); between two texts without `|`, the suffix
 * `|<epoch>` matches only the same epoch. So a run without `|` or `\x01` goes as it is (flag 32),
 * and a meta's epoch holding `|` is another run; a run holding either goes escaped (see
 * {@link escapeRun}; flag 64 besides, a rare path), and the script escapes the meta's epoch the same
 * way before it compares.
 *
 * The snapshot does not travel through the script: the client writes it first, with a plain `SET`
 * and a TTL, to a staged key of this attempt's own (`<snapshot key>:<eventId of the last event>`),
 * in the same pipeline, and the script renames that key over the snapshot when the append is stored
 * (`RENAME`, no copy), or deletes it when the append is refused. A 53 KB argument cost Redis ~75 us
 * to hand to Lua (and its garbage collector), 13% of a burst's time with a snapshot every 1,000
 * events; a plain SET costs ~1 us. A staged key that is missing (its SET lost with a connection) only
 * means no snapshot this time: the append is stored, and `snapSeq` stays where it was.
 * Numbers are decimal strings without leading zeros (what `String(n)` gives).
 *
 * (Until 2026-11-28 the small values were packed into one head string, because ioredis encodes every
 * argument on its own. Since the store hands ioredis its argument array as is (`append-command.ts`),
 * separate arguments are cheaper: Redis runs ~5% fewer instructions per append without the pattern
 * that cut the head apart (`tools/bench/storage-redis/instructions.ts`).)
 *
 * The values are trusted to be as the store sends them (the deadline is `String()` of a whole
 * number, and 13 digits of it compare as text). What a bad value gets: a deadline of another length
 * that is not all digits, an error reply; a seq that is not a number, a Lua error; a new seq Redis
 * cannot take as a stream id, Redis' error. In each case nothing is written (a feed entry already
 * added is taken back out).
 *
 * The batch is stored as ONE stream entry, id `0-<seq of its last event>`, field `b` (the JSON array).
 * The entry holding seq s is therefore the first entry with an id >= `0-s`.
 *
 * Returns 1 when appended; `{3, epoch}` when appended in cluster mode while the upgrade's meta still
 * holds `unfed` = '1' (set by its first append, taken out by UNMARK_LUA once a feed entry from seq 1 is
 * written; the first append's follow-up may never have come, its writer killed in between), so that
 * the client points this append's feed entry from seq 1 (unless it is writing that entry itself);
 * otherwise `{code, storedSeq}`: 2 already appended by an earlier attempt of this same call
 * (idempotent retry: the stored seq is at least `expectedSeq + n`, since later appends may have run
 * after it and before the re-send, and the entry holding seq `expectedSeq + 1` holds the same eventId at that seq; this
 * also reads entries of the earlier one-event-per-entry layout, field `e`; `{2, storedSeq, epoch}`
 * while the cluster-mode `unfed` mark is there, as 3 says for a first attempt); 0 CONFLICT; -1 refused
 * because the deadline passed before it ran; -2 (with Redis' error) the events entry could not be
 * written because the stream disagrees with `lastSeq` (an entry at or past the new id, or no stream
 * after the first append), or the key is not a stream (damage): nothing
 * is written. Any other refusal of that write (OOM, MISCONF: in cluster mode it is the script's
 * first write) is an error reply, with nothing written.
 *
 * The deadline is read off the feed entry's id in single-node mode (see the script); a Cluster append,
 * which has no feed key, asks TIME.
 *
 * Seqs are written as the strings the client sends; the rare paths that compute with them (retry
 * check, retention) use Lua numbers and write them with `%d`, exact for any seq below 2^53.
 */
export const APPEND_LUA = `
local rcall = redis.call
if not ARGV[8] then return redis.error_reply('ERR progress append: too few arguments') end
local deadline, flags, expectedText, newLast, fast = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- The rest (ARGV[7]) is read only where it is needed: anything but a plain append (flags other than
-- 0, 1, 32 or 33), the first append (its epoch) and a conflict or retry (the eventId).
local rare = expectedText == '0'
local feedKey, indexKey, deletedKey, snapKey, stagedKey
-- runGiven (flag 32): ARGV[7] ends with '|' and the upgrade's epoch as the client knows it (see below);
-- runEscaped (flag 64): escaped, for it holds '|' or \\1.
local runGiven, runEscaped = false, false
if flags == '33' then
  feedKey = KEYS[3]
  runGiven = true
elseif flags == '1' then
  feedKey = KEYS[3]
elseif flags == '32' then
  runGiven = true
elseif flags ~= '0' then
  rare = true
  flags = tonumber(flags)
  local k = 3
  runGiven = math.floor(flags / 32) % 2 == 1
  runEscaped = math.floor(flags / 64) % 2 == 1
  if flags % 2 == 1 then feedKey = KEYS[k]; k = k + 1 end
  if math.floor(flags / 2) % 2 == 1 then indexKey = KEYS[k]; k = k + 1 end
  if math.floor(flags / 16) % 2 == 1 then deletedKey = KEYS[k]; k = k + 1 end
  if math.floor(flags / 4) % 2 == 1 then snapKey = KEYS[k]; stagedKey = KEYS[k + 1] end
end
-- A refused append leaves no staged snapshot behind (its TTL would, a while later): each refusal
-- below deletes it first. (Written out at each return: a local function would be a closure made on
-- every call, ~1,200 instructions on the common path.)
-- The first append of an upgrade checks that its user may run what this upgrade's appends run, on
-- its keys, before it reads or writes anything (Redis 7's ACL check; absent before 7). Redis checks
-- each command a script runs when it runs: refused after the XADDs, an append left its entries
-- without their meta, and every later first append of the id failed as damage; refused at its first
-- read (HGET, or the HMGET of cluster mode and of every append that names its run), it failed with
-- Redis 7.0's message, which names no command, or (HMGET in single mode) stored the upgrade that no
-- later append could then write. The snapshot's and
-- retention's commands are checked on the meta key (they run on keys of the same prefix).
if expectedText == '0' and redis.acl_check_cmd then
  local m, e = KEYS[2], KEYS[1]
  local need = {{'HGET', m, 'f'}, {'HMGET', m, 'f'}, {'HSET', m, 'f', 'v'}, {'XADD', e, '*', 'b', 'v'}, {'XRANGE', e, '-', '+'}, {'XTRIM', e, 'MINID', '0-1'},
    {'EXPIRE', e, '1'}, {'EXPIRE', m, '1'}, {'PTTL', m}, {'PEXPIRE', m, '1'}, {'PERSIST', m}, {'EXISTS', m}, {'RENAME', m, m}, {'DEL', m}, {'TIME'}}
  if feedKey then need[#need + 1] = {'XADD', feedKey, '*', 'p', 'v'}; need[#need + 1] = {'XDEL', feedKey, '0-1'} end
  -- A Cluster append writes the index (and the feed) after the script, in other slots: ZADD is asked
  -- on a key of the same prefix here, or a user without it had upgrades stored but never listed.
  local index = indexKey or m
  need[#need + 1] = {'ZADD', index, '1', 'u'}; need[#need + 1] = {'ZREM', index, 'u'}
  for _, c in ipairs(need) do
    if not redis.acl_check_cmd(unpack(c)) then
      if stagedKey then redis.pcall('DEL', stagedKey) end
      return redis.error_reply('NOPERM progress append: this Redis user may not run ' .. c[1] .. (c[2] and (' on ' .. c[2]) or '') .. ', which appends run (see the README, Permissions); nothing was written')
    end
  end
end
-- Cluster mode (no feed key) also reads 'unfed' (set by an upgrade's first append, taken out once a
-- feed entry from seq 1 is written) and the epoch, the client's answer while the mark is there.
-- With flag 32 the client names the run it writes to (the epoch it knows from its own first append
-- or a load). Redis has no writer lock: delete() runs while a writer is open, and a new run created
-- under the id may reach that writer's seq, so the seq alone would take the stale writer's events
-- into the new run. Another epoch in the meta, or none, is a CONFLICT whatever the seqs.
local lastText, unfed, epoch
if not feedKey then
  local m = rcall('HMGET', KEYS[2], 'lastSeq', 'unfed', 'epoch')
  lastText = m[1] or '0'
  epoch = m[3]
  if m[2] == '1' then unfed = m[3] end
elseif runGiven then
  local m = rcall('HMGET', KEYS[2], 'lastSeq', 'epoch')
  lastText = m[1] or '0'
  epoch = m[2]
else
  lastText = rcall('HGET', KEYS[2], 'lastSeq') or '0'
end
-- The run as it is holds no '|' (the client escapes one that does): the meta's epoch holding one is
-- another run (a suffix compare could match it: 'a|b' after an eventId 'a' ends like run 'b'). An
-- escaped run is compared with the meta's epoch escaped the same way (see escapeRun).
if runGiven then
  if epoch and runEscaped then epoch = (string.gsub((string.gsub(epoch, '\\1', '\\1a')), '|', '\\1b'))
  elseif epoch and epoch:find('|', 1, true) then epoch = nil end
  if not epoch or string.sub(ARGV[7], -#epoch - 1) ~= '|' .. epoch then
    if stagedKey then rcall('DEL', stagedKey) end return {0, tonumber(lastText), 'run'}
  end
end
local feedMaxLen, ttl, maxEvents, score = '0', '0', '0', '0'
local upgradeId, eventId
if rare or lastText ~= expectedText then
  local rest = ARGV[7]
  if type(flags) == 'number' and math.floor(flags / 8) % 2 == 1 then
    local bar
    feedMaxLen, ttl, maxEvents, score, bar = string.match(rest, '^(%d+),(%d+),(%d+),(%d+)|()')
    if not feedMaxLen then if stagedKey then rcall('DEL', stagedKey) end return redis.error_reply('ERR progress append: malformed rare values') end
    rest = string.sub(rest, bar)
  end
  local bar = string.find(rest, '|', 1, true)
  if not bar then if stagedKey then rcall('DEL', stagedKey) end return redis.error_reply('ERR progress append: malformed upgrade and event id') end
  upgradeId = string.sub(rest, 1, bar - 1)
  -- With the run given, it follows the eventId: the meta's epoch (escaped), as checked above.
  if runGiven then eventId = string.sub(rest, bar + 1, -#epoch - 2) else eventId = string.sub(rest, bar + 1) end
end
-- A first append whose eventId is the epoch of a run delete() removed, with the token of the call
-- that created that run (ARGV[10]): this is a re-send of that run's first append, which ran before
-- the delete (its reply lost with the connection). Running it again would bring the deleted upgrade
-- back: it is answered as done (stored seq 0), storing nothing. A new call with the same events (a
-- re-import) has its own token, and is stored.
if deletedKey and lastText == '0' and ARGV[10] and rcall('HGET', deletedKey, eventId) == ARGV[10] then
  if stagedKey then rcall('DEL', stagedKey) end return {2, 0}
end
-- The common path compares and writes seqs as the strings the client sent: no number parsing or
-- formatting, which showed up in Redis' profile.
if lastText ~= expectedText then
  local last = tonumber(lastText)
  local expected = tonumber(expectedText)
  local firstText = string.format('%d', expected + 1)
  if last >= tonumber(newLast) then
    local found = rcall('XRANGE', KEYS[1], '0-' .. firstText, '+', 'COUNT', 1)
    if found[1] then
      local f = found[1][2]
      for j = 1, #f - 1, 2 do
        if f[j] == 'b' or f[j] == 'e' then
          local ok, v = pcall(cjson.decode, f[j + 1])
          if ok and type(v) == 'table' then
            if f[j] == 'e' then v = {v} end
            for _, ev in ipairs(v) do
              if type(ev) == 'table' and ev.seq == expected + 1 then
                if ev.eventId == eventId then if stagedKey then rcall('DEL', stagedKey) end return {2, last, unfed} end
                break
              end
            end
          elseif not ok and string.find(f[j + 1], '{"eventId":"' .. eventId .. '","seq":' .. firstText .. ',', 1, true) then
            -- cjson refuses some JSON that JSON.stringify writes (a lone surrogate, deep nesting):
            -- then the event is found by its start as the client writes it (eventId, then seq).
            if stagedKey then rcall('DEL', stagedKey) end return {2, last, unfed}
          end
        end
      end
    end
  end
  if stagedKey then rcall('DEL', stagedKey) end return {0, last}
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
  if feedMaxLen ~= '0' then
    feedId = rcall('XADD', feedKey, 'MAXLEN', '~', feedMaxLen, '*', 'p', ARGV[6])
  else
    feedId = rcall('XADD', feedKey, '*', 'p', ARGV[6])
  end
  if deadline ~= '0' then
    if #deadline == 13 and string.byte(feedId, 14) == 45 then
      -- Both ms have 13 digits (any time from 2001 to 2286): the whole id compares as text. Only an
      -- id that compares greater has its ms cut out: it may be the deadline itself, which is in time.
      suspect = feedId > deadline and string.sub(feedId, 1, 13) > deadline
    else
      -- (Digits only: tonumber would also take 'nan' and 'inf', which no time is past.)
      if not string.find(deadline, '^%d+$') then
        rcall('XDEL', feedKey, feedId)
        if stagedKey then rcall('DEL', stagedKey) end return redis.error_reply('ERR progress append: malformed deadline')
      end
      suspect = tonumber(string.sub(feedId, 1, string.find(feedId, '-', 1, true) - 1)) > tonumber(deadline)
    end
  end
else
  suspect = deadline ~= '0'
  if suspect and not string.find(deadline, '^%d+$') then if stagedKey then rcall('DEL', stagedKey) end return redis.error_reply('ERR progress append: malformed deadline') end
end
if suspect then
  local t = rcall('TIME')
  local now = t[1]
  local late
  if #deadline == 13 and #now == 10 then
    -- The seconds compare as text; the ms are converted only within the deadline's second. Three
    -- tonumber() calls (strtod) cost Redis as much as the TIME call itself, on every Cluster append.
    local s = string.sub(deadline, 1, 10)
    late = now > s or (now == s and math.floor(tonumber(t[2]) / 1000) > tonumber(string.sub(deadline, 11)))
  else
    late = tonumber(now) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(deadline)
  end
  if late then
    if feedId then rcall('XDEL', feedKey, feedId) end
    if stagedKey then rcall('DEL', stagedKey) end return {-1, tonumber(lastText)}
  end
end
local events = KEYS[1]
-- The first append indexes the upgrade. An index key holding another kind of value fails it with
-- nothing written (the feed entry is taken back out): a script's writes are not rolled back.
if indexKey then
  local indexed = redis.pcall('ZADD', indexKey, score, upgradeId)
  if type(indexed) == 'table' and indexed.err then
    if feedId then rcall('XDEL', feedKey, feedId) end
    if stagedKey then rcall('DEL', stagedKey) end return redis.error_reply(indexed.err)
  end
end
-- The stream disagreeing with lastSeq (an entry at or past the new id) is damage, not a conflict:
-- report it with nothing written (the feed and index entries are taken back out). So is a key of
-- another type. Any other refusal is Redis' own, not damage: in cluster mode this XADD is the
-- script's first write, which Redis refuses when it is out of memory (OOM) or cannot persist
-- (MISCONF). It is passed on as an error, with nothing written either.
-- After the first append the stream must be there: NOMKSTREAM (free) does not make it again. Gone
-- while the meta stayed (evicted by a maxmemory policy, deleted by hand), a new stream would start
-- after a hole, and the next snapshot would hide it from load(). Damage, with nothing written.
-- (Redis before 6.2 has no NOMKSTREAM and refuses the arguments: EXISTS asks instead there.)
local entry = '0-' .. newLast
local added
if expectedText == '0' then
  added = redis.pcall('XADD', events, entry, 'b', ARGV[8])
else
  added = redis.pcall('XADD', events, 'NOMKSTREAM', entry, 'b', ARGV[8])
  if type(added) == 'table' and (string.find(tostring(added.err), 'wrong number of arguments', 1, true) or string.find(tostring(added.err), 'Invalid stream ID', 1, true)) then
    if rcall('EXISTS', events) == 1 then added = redis.pcall('XADD', events, entry, 'b', ARGV[8]) else added = false end
  end
end
if not added then
  if feedId then rcall('XDEL', feedKey, feedId) end
  if indexKey then rcall('ZREM', indexKey, upgradeId) end
  if stagedKey then rcall('DEL', stagedKey) end
  return {-2, 'the stream is missing (evicted or deleted: see the README, Durability), while the meta is at lastSeq ' .. lastText}
end
if added ~= entry and type(added) == 'table' then
  if feedId then rcall('XDEL', feedKey, feedId) end
  if indexKey then rcall('ZREM', indexKey, upgradeId) end
  local err = tostring(added.err)
  if string.find(err, 'equal or smaller than the target stream top item', 1, true) or string.find(err, 'WRONGTYPE', 1, true) then if stagedKey then rcall('DEL', stagedKey) end return {-2, err} end
  if stagedKey then rcall('DEL', stagedKey) end return redis.error_reply(err)
end
local row = ARGV[9]
if row and row ~= '' then
  rcall('HSET', KEYS[2], 'lastSeq', newLast, 'fast', fast, 'row', row)
else
  rcall('HSET', KEYS[2], 'lastSeq', newLast, 'fast', fast)
end
-- Cluster mode: the upgrade's first feed entry is not known to be written (its writer may have died
-- before its follow-up): {3, epoch} tells the client to point this append's entry from seq 1.
if not rare then if unfed then return {3, unfed} end return 1 end
-- The upgrade's epoch: a watcher that sees it change knows the upgrade was deleted and re-created.
-- With it, in single-node mode, the id of this first append's feed entry ('born'): a feed entry
-- older than that points into an earlier upgrade under this id, whose events are gone.
if expectedText == '0' then
  -- In cluster mode the feed entry follows the script, and may never come (a writer killed in
  -- between): 'unfed' stays until an entry from seq 1 is known written (UNMARK_LUA).
  -- And the token of the call (ARGV[10]), which a delete records with the epoch (see DELETE_LUA).
  local token = ARGV[10] or ''
  if feedId then rcall('HSET', KEYS[2], 'epoch', eventId, 'born', feedId, 'token', token) else rcall('HSET', KEYS[2], 'epoch', eventId, 'unfed', '1', 'token', token) end
end
local snapSeq = nil
-- The staged snapshot becomes the snapshot (it keeps the staged key's TTL: PERSIST, or the retention
-- TTL below). Missing (its SET was lost with a connection, or it expired): no snapshot this time.
-- A non-terminal append after a terminal one (through the store API; the tracker sends none) finds
-- the meta, and the events with it, expiring already: the snapshot follows the meta's TTL, or it
-- would stay for good after the rest of the upgrade expired.
if snapKey and rcall('EXISTS', stagedKey) == 1 then
  rcall('RENAME', stagedKey, snapKey)
  if ttl == '0' then
    local left = rcall('PTTL', KEYS[2])
    if left > 0 then rcall('PEXPIRE', snapKey, left) else rcall('PERSIST', snapKey) end
  end
  rcall('HSET', KEYS[2], 'snapSeq', newLast)
  snapSeq = tonumber(newLast)
end
if maxEvents ~= '0' then
  local last = tonumber(newLast)
  snapSeq = snapSeq or tonumber(rcall('HGET', KEYS[2], 'snapSeq') or '0')
  local cut = math.min(snapSeq, last - tonumber(maxEvents))
  local trimmed = tonumber(rcall('HGET', KEYS[2], 'trimmed') or '0')
  if cut > trimmed then
    rcall('XTRIM', events, 'MINID', string.format('0-%d', cut + 1))
    rcall('HSET', KEYS[2], 'trimmed', string.format('%d', cut))
  end
end
if ttl ~= '0' then
  rcall('EXPIRE', events, ttl)
  rcall('EXPIRE', KEYS[2], ttl)
  if snapKey then rcall('EXPIRE', snapKey, ttl) end
end
if unfed then return {3, unfed} end
-- A number, not a table: building the reply table is measurable on this path.
return 1
`;

/**
 * Pushes an append's ARGV 1-7 (see {@link APPEND_LUA}) onto `args`, with '' for the deadline, which
 * the sender fills in when it sends. `flags` is the keys' flags (1, 2, 4, 16; the 8 for `rare` is added
 * here); `rare` is '' or `feedMaxLen,ttl,maxEvents,score`; `fast` the list row's
 * `lastSeq|overallPercentage|updatedAt`. With flag 1 (the feed key given) it adds the feed entry's
 * field. `run`, when given (the upgrade's epoch as the store knows it), adds flag 32 and `|<run>` at
 * the end of ARGV[7] (escaped, with flag 64, when it holds `|` or `\x01`: see escapeRun). The one
 * place that writes the values the script reads; the `|` before the eventId keeps a lone surrogate
 * at the end of the upgrade id from pairing with one at its start.
 */
export function pushAppendArgs(args: string[], flags: number, expectedSeq: number, n: number, rare: string, upgradeId: string, fast: string, eventId: string, run?: string): void {
  const sent = run === undefined ? undefined : escapeRun(run);
  const ids = sent === undefined ? `${upgradeId}|${eventId}` : `${upgradeId}|${eventId}|${sent}`;
  args.push(
    '',
    String((rare ? flags + 8 : flags) + (sent === undefined ? 0 : sent === run ? 32 : 96)),
    String(expectedSeq),
    String(expectedSeq + n),
    fast,
    flags & 1 ? feedPointer(upgradeId, expectedSeq + 1, n) : '',
    rare ? `${rare}|${ids}` : ids,
  );
}

/**
 * The run (an epoch: an eventId, any text) as the append sends it, without `|`: itself when it holds
 * neither `|` nor `\x01`; otherwise with `\x01` written `\x01a` and `|` written `\x01b`, a code no
 * two texts share (flag 64). APPEND_LUA escapes the meta's epoch the same way before its suffix
 * compare (see flag 32 there).
 */
export function escapeRun(run: string): string {
  return run.includes('|') || run.includes('\x01') ? run.replaceAll('\x01', '\x01a').replaceAll('|', '\x01b') : run;
}

/** The SHA1 of {@link APPEND_LUA}, for EVALSHA. */
export const APPEND_SHA = createHash('sha1').update(APPEND_LUA).digest('hex');

/**
 * Reads what `load()` needs in one atomic step: `{lastSeq, snapSeq, snapshot JSON, tail entries,
 * epoch}` (the epoch '' when the meta has none; lastSeq '' when there is no meta but the events
 * are there: damage; absent from the reply of the same command defined by
 * an earlier version of this store on a shared client),
 * the tail being the entries from the one holding `snapSeq + 1` on (the caller drops events <= snapSeq
 * inside it; about `snapshotEvery` events). Nil when absent.
 * KEYS: events, meta, snapshot.
 */
export const LOAD_LUA = `
-- What it runs, checked against the user's ACL first (Redis 7): Redis 7.0 refuses a command a script
-- runs with a message that names none.
if redis.acl_check_cmd then
  for _, c in ipairs({{'HMGET', KEYS[2], 'f'}, {'GET', KEYS[3]}, {'XRANGE', KEYS[1], '-', '+'}, {'EXISTS', KEYS[1]}}) do
    if not redis.acl_check_cmd(unpack(c)) then
      return redis.error_reply('NOPERM progress load: this Redis user may not run ' .. c[1] .. ' on ' .. c[2] .. ' (see the README, Permissions)')
    end
  end
end
local meta = redis.call('HMGET', KEYS[2], 'lastSeq', 'snapSeq', 'epoch')
-- No meta: no upgrade, unless its events are there (the meta evicted or deleted alone): then
-- lastSeq '' tells the client, which reports the damage rather than "no such upgrade".
if not meta[1] then
  if redis.call('EXISTS', KEYS[1]) == 1 then return {'', '0', '', {}, ''} end
  return false
end
local snapSeq = tonumber(meta[2] or '0')
local snap = ''
if snapSeq > 0 then snap = redis.call('GET', KEYS[3]) or '' end
local tail = redis.call('XRANGE', KEYS[1], string.format('0-%d', snapSeq + 1), '+')
return {meta[1], string.format('%d', snapSeq), snap, tail, meta[3] or ''}
`;

/**
 * {@link LOAD_LUA} declared read-only (Redis 7 and later): Redis runs it while writes are paused
 * (`CLIENT PAUSE ... WRITE`, which a failover issues), when it holds every script that does not say
 * it only reads. Redis before 7 does not know the shebang line and refuses to compile the script
 * ({@link isScriptFlagsRefusal}): the store then sends {@link LOAD_LUA}. (The delete and prune
 * scripts write, and stay undeclared.)
 */
export const LOAD_READ_ONLY_LUA = `#!lua flags=no-writes${LOAD_LUA}`;

/** The SHA1 of {@link LOAD_READ_ONLY_LUA}, for EVALSHA_RO. */
export const LOAD_READ_ONLY_SHA = createHash('sha1').update(LOAD_READ_ONLY_LUA).digest('hex');

/**
 * Whether `err` is Redis refusing `EVALSHA_RO` / `EVAL_RO` themselves: a Redis before 7 ("ERR unknown
 * command `evalsha_ro`"), or an ACL that grants EVALSHA and EVAL but not these ("NOPERM ... no
 * permissions to run the 'evalsha_ro' command"). Not a refusal of the keys or of a command the
 * script runs.
 */
export const isReadOnlyEvalRefusal = (err: unknown): boolean =>
  err instanceof Error && /(unknown command|permissions to run the)\W+(evalsha_ro|eval_ro)\b/i.test(err.message);

/**
 * Whether `err` is a Redis before 7 refusing a script with a shebang line (flags): "ERR Error
 * compiling script (new function): user_script:1: unexpected symbol near '#'".
 */
export const isScriptFlagsRefusal = (err: unknown): boolean => err instanceof Error && /Error compiling script/i.test(err.message);

/**
 * Deletes one upgrade. KEYS: events, meta, snapshot, this call's marker, the deleted runs [, index]; ARGV: upgradeId,
 * deadline (ms on the server clock, a whole number; '0' = none), the marker's TTL in ms. Returns 1
 * when it existed, 0 when it did not, -1 when the deadline had passed (nothing deleted): a delete the
 * caller was told failed (timed out) must not run later, after the upgrade went on and more of it was
 * acknowledged. A re-send of a call that ran returns 3 or 2 (see below).
 *
 * The marker (`<prefix>{id}:delete:<token>`, a token per `delete()` call, in the upgrade's slot)
 * makes a re-sent call (ioredis re-sends the commands in flight after a reconnect, and the first
 * run's reply may have been lost with the connection) answer what the first run answered, plus 2
 * (the run was an earlier connection's, which a `WAIT` on this one does not vouch for: see the
 * store's `replicas`), and delete nothing: not the upgrade created again under the id in between,
 * and not reported as refused past the deadline when it ran in time. It is read first, before the
 * deadline, and written (with its TTL) whenever the delete ran; it is never read as anything else.
 *
 * The deleted run's epoch (the eventId of its seq 1) goes into the deleted runs' hash
 * (`<prefix>{id}:deleted`, with the marker's TTL), with the token of the call whose first append
 * created it: ioredis may still re-send that append, which ran before the delete and whose reply
 * was lost, and the append script answers it as done rather than store the deleted upgrade again
 * (see APPEND_LUA). A new call with the same events has another token, and is stored.
 */
export const DELETE_LUA = `
-- What it runs, checked against the user's ACL before anything is read or written (Redis 7; a
-- command refused by the ACL in the middle would leave the upgrade half deleted, and one refused
-- first, the marker's GET, failed with Redis 7.0's message, which names no command).
if redis.acl_check_cmd then
  local need = {{'GET', KEYS[4]}, {'TIME'}, {'DEL', KEYS[1], KEYS[2], KEYS[3]}, {'EXISTS', KEYS[2]}, {'SET', KEYS[4], '1'}, {'HMGET', KEYS[2], 'epoch', 'token'}, {'HSET', KEYS[5], 'f', 'v'}, {'PEXPIRE', KEYS[5], '1'}}
  if #KEYS >= 6 then need[#need + 1] = {'ZREM', KEYS[6], 'u'} end
  for _, c in ipairs(need) do
    if not redis.acl_check_cmd(unpack(c)) then
      return redis.error_reply('NOPERM progress delete: this Redis user may not run ' .. c[1] .. (c[2] and (' on ' .. c[2]) or '') .. ' (see the README, Permissions); nothing was deleted')
    end
  end
end
local done = redis.call('GET', KEYS[4])
if done then return tonumber(done) + 2 end
local deadline = tonumber(ARGV[2] or '0') or 0
if deadline > 0 then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > deadline then return -1 end
end
-- The deleted runs and the index first: one holding another kind of value (WRONGTYPE, damage) fails
-- the delete before the upgrade is touched (a script's writes are not rolled back), as a delete
-- reported failed must be. (A run recorded as deleted while it stays only stops a re-send of its
-- first append, which finds it stored anyway.)
local run = redis.call('HMGET', KEYS[2], 'epoch', 'token')
if run[1] and run[2] and run[2] ~= '' then
  redis.call('HSET', KEYS[5], run[1], run[2])
  redis.call('PEXPIRE', KEYS[5], ARGV[3])
end
if #KEYS >= 6 then redis.call('ZREM', KEYS[6], ARGV[1]) end
local existed = redis.call('EXISTS', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('SET', KEYS[4], existed, 'PX', ARGV[3])
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

/**
 * Cluster mode: takes an upgrade's `unfed` mark out (see APPEND_LUA) once a feed entry from its seq 1
 * is written, if the meta is still of that run: KEYS[1] meta, ARGV[1] the run's epoch (the eventId of
 * its seq 1). A deleted upgrade's meta is not made again, and one created again under the id keeps
 * its own mark. HSET, not HDEL: the appends run it already (see the README, Permissions).
 */
export const UNMARK_LUA = `
if redis.call('HGET', KEYS[1], 'epoch') == ARGV[1] then redis.call('HSET', KEYS[1], 'unfed', '0') return 1 end
return 0
`;

/** A stream entry as ioredis returns it: `[id, [field, value, ...]]`. */
export type StreamEntry = [id: string, fields: string[]];

/** What `progressLoad` returns. */
export type LoadReply = [lastSeq: string, snapSeq: string, snapshot: string, tail: StreamEntry[], epoch?: string] | null;

/**
 * The read and delete commands {@link defineScripts} adds (ioredis sends EVALSHA and falls back on
 * NOSCRIPT). The append is sent by `append-command.ts`.
 *
 * Those a Cluster runs take a fixed number of keys (defined with it, not passed first): ioredis'
 * auto-pipelining (`enableAutoPipelining`, which the README advises for a Cluster) routes a script
 * by its first argument, so with the number of keys first it put load() and delete() into the
 * pipeline of the node of the slot of "3" or "4", whose check of the keys then failed them all
 * ("All keys in the pipeline should belong to the same slots allocation group"). The names are new
 * with that (V2, V4), and with each change of their keys or replies since (V5: the deleted runs'; V6:
 * a re-send's reply): a client shared with a store of an earlier version keeps that one's own.
 */
export interface ScriptCommands {
  /** KEYS: events, meta, snapshot. */
  progressLoadV2(events: string, meta: string, snapshot: string): Promise<LoadReply>;
  progressLoadReadOnlyV2(events: string, meta: string, snapshot: string): Promise<LoadReply>;
  /** Cluster mode: KEYS events, meta, snapshot, marker, deleted runs; then ARGV. */
  progressDeleteV6(...args: string[]): Promise<number>;
  /** Single mode: KEYS events, meta, snapshot, marker, deleted runs, index; then ARGV. */
  progressDeleteIndexedV6(...args: string[]): Promise<number>;
  /** Single mode only (its keys span slots). */
  progressPruneV1(numKeys: number, ...args: string[]): Promise<number>;
  /** Cluster mode: KEYS meta; ARGV epoch. */
  progressUnmarkV1(meta: string, epoch: string | Buffer): Promise<number>;
}

/** Registers the scripts on a client (idempotent) and returns it typed with them. */
export function defineScripts<C extends Redis | Cluster>(client: C): C & ScriptCommands {
  const c = client as C & Partial<ScriptCommands>;
  if (typeof c.progressLoadV2 !== 'function') client.defineCommand('progressLoadV2', { lua: LOAD_LUA, numberOfKeys: 3 });
  if (typeof c.progressLoadReadOnlyV2 !== 'function') client.defineCommand('progressLoadReadOnlyV2', { lua: LOAD_READ_ONLY_LUA, numberOfKeys: 3 });
  if (typeof c.progressDeleteV6 !== 'function') client.defineCommand('progressDeleteV6', { lua: DELETE_LUA, numberOfKeys: 5 });
  if (typeof c.progressDeleteIndexedV6 !== 'function') client.defineCommand('progressDeleteIndexedV6', { lua: DELETE_LUA, numberOfKeys: 6 });
  if (typeof c.progressPruneV1 !== 'function') client.defineCommand('progressPruneV1', { lua: PRUNE_LUA });
  if (typeof c.progressUnmarkV1 !== 'function') client.defineCommand('progressUnmarkV1', { lua: UNMARK_LUA, numberOfKeys: 1 });
  return client as C & ScriptCommands;
}
