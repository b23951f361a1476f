"""Lua sources for the agent pool.

Every state change is one script so that two app instances can never see an
agent half-way through a transition: Redis runs a script to completion before
any other command. Times come from the Redis server's own clock (TIME), so
instances with skewed clocks still agree on idle order and wrap-up expiry.

Key layout (B is the base, "{prefix}:", whose braces are the Redis Cluster
hash tag, so every key below lives in one slot):

    B agents                      set of agent ids known to the pool
    B agent:<id>                  hash: profile (site, langs, skills) and state
    B wrapup                      zset of agents in wrap-up, scored by its end (ms)
    B av:<skill>:<lang>           zset of available+reachable agents, scored by idle-since
    B av:<skill>:<lang>:<site>    the same, one site only (site preference)
    B records                     the records stream: each state change is an entry
                                  with field `agent` (records/agent_events.py)
    B hist:<id>                   list: the agent's last 100 state changes, newest first
    B agent_state                 pub/sub channel: each state change, as it happens

Agent hash fields: prof (proficiency, "skill=level,..."), state, since (ms
the state began), idle (ms idle since, kept while offered so a cancelled offer
restores the agent's place), call,
until (wrap-up end), reason (pause), pend (pause asked for during a call),
reach ("0" = unreachable; missing = reachable), ent (entity of the call
offered), wcall and went (the call, and its entity, of the agent's last
wrap-up: it may be tagged until the agent's next offer), tagged (the call
that has a reason: the agent may tag during the call too), wext (ms the wrap-up
was extended by).

Every state change is logged by the script that makes it (`log_state`), so the
history can never miss or invent one: one JSON object per change, written to
the records stream (archived like call events), the agent's history list and
the pub/sub channel.

Scripts take the base in ARGV[1]; KEYS[1] is always B agents, so a cluster
client routes them to the slot that holds every key they touch.
"""

from __future__ import annotations

_COMMON = r"""
local B = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function ms(x) return string.format('%d', x) end

local function split(s)
  local out = {}
  if s then for x in string.gmatch(s, '[^,]+') do out[#out + 1] = x end end
  return out
end

-- Add (score given) or remove (score nil) an agent in every index it belongs to.
local function index(id, score)
  local p = redis.call('HMGET', B .. 'agent:' .. id, 'site', 'langs', 'skills')
  if not p[1] then return end
  local langs, skills = split(p[2]), split(p[3])
  for _, s in ipairs(skills) do
    for _, l in ipairs(langs) do
      local k = B .. 'av:' .. s .. ':' .. l
      if score then
        redis.call('ZADD', k, ms(score), id)
        redis.call('ZADD', k .. ':' .. p[1], ms(score), id)
      else
        redis.call('ZREM', k, id)
        redis.call('ZREM', k .. ':' .. p[1], id)
      end
    end
  end
end

-- One state change, after the hash holds the new state: `kind` says what
-- happened, `extra` adds fields (a table of strings). A wrap-up left without a
-- reason names its call in `noreason`, which the archiver turns into the
-- call's "no_reason_given" (records/agent_events.py).
local function log_state(id, kind, now, extra)
  local k = B .. 'agent:' .. id
  local h = redis.call('HMGET', k, 'state', 'site', 'reach', 'reason', 'call', 'until')
  local ev = {agent = id, kind = kind, state = h[1] or 'logged_out', at = ms(now),
              site = h[2] or '', reach = (h[3] == '0') and '0' or '1'}
  if ev.state == 'paused' and h[4] then ev.reason = h[4] end
  if h[5] then ev.call = h[5] end
  if ev.state == 'wrapup' and h[6] then ev['until'] = h[6] end
  if extra then for f, v in pairs(extra) do ev[f] = v end end
  local xid = redis.call('XADD', B .. 'records', '*', 'agent', cjson.encode(ev))
  ev.id = xid
  local body = cjson.encode(ev)
  redis.call('LPUSH', B .. 'hist:' .. id, body)
  redis.call('LTRIM', B .. 'hist:' .. id, 0, 99)
  redis.call('PUBLISH', B .. 'agent_state', body)
end

-- The call whose wrap-up the agent is leaving untagged, or nil.
local function untagged(k)
  local w = redis.call('HMGET', k, 'state', 'wcall', 'tagged')
  if w[1] == 'wrapup' and w[2] and w[3] ~= w[2] then return w[2] end
  return nil
end

-- `idle` is where the agent goes in line; `at` when it happened (default: idle;
-- an offer the caller left restores an earlier place, now)
local function set_available(id, idle, kind, extra, at)
  local k = B .. 'agent:' .. id
  local nr = untagged(k)
  redis.call('HSET', k, 'state', 'available', 'since', ms(idle), 'idle', ms(idle))
  redis.call('HDEL', k, 'call', 'until', 'reason', 'pend')
  redis.call('ZREM', B .. 'wrapup', id)
  if redis.call('HGET', k, 'reach') ~= '0' then index(id, idle) end
  extra = extra or {}
  if nr then extra.noreason = nr end
  log_state(id, kind or 'available', at or idle, extra)
end

local function set_paused(id, reason, now, kind)
  local k = B .. 'agent:' .. id
  local nr = untagged(k)
  redis.call('HSET', k, 'state', 'paused', 'since', ms(now), 'reason', reason)
  redis.call('HDEL', k, 'call', 'until', 'idle', 'pend')
  redis.call('ZREM', B .. 'wrapup', id)
  log_state(id, kind or 'paused', now, nr and {noreason = nr} or nil)
end

-- available -> offered (TAKE, DISPATCH, RESERVE): a new call, so the last
-- wrap-up's call can no longer be tagged from here.
local function set_offered(id, call, entity, now)
  local k = B .. 'agent:' .. id
  redis.call('HSET', k, 'state', 'offered', 'call', call, 'since', ms(now), 'ent', entity or '')
  redis.call('HDEL', k, 'wcall', 'went', 'tagged')
  log_state(id, 'offered', now)
end

-- Lazy end of wrap-up: whoever touches the pool first after the end does it.
local function promote(now)
  local due = redis.call('ZRANGEBYSCORE', B .. 'wrapup', '-inf', ms(now))
  for _, id in ipairs(due) do
    redis.call('ZREM', B .. 'wrapup', id)
    local k = B .. 'agent:' .. id
    if redis.call('HGET', k, 'state') == 'wrapup' then
      set_available(id, tonumber(redis.call('HGET', k, 'until')) or now, 'wrapup_timeout')
    end
  end
end

local function state_of(id)
  local k = B .. 'agent:' .. id
  if redis.call('EXISTS', k) == 0 or not redis.call('HGET', k, 'site') then
    return nil
  end
  return redis.call('HGET', k, 'state') or 'logged_out'
end
"""


def _script(body: str) -> str:
    return _COMMON + body


# ARGV: B, id, site, langs (csv), skills (csv), proficiency (csv of skill=level)
PROFILE = _script(r"""
local id = ARGV[2]
local k = B .. 'agent:' .. id
local st = redis.call('HGET', k, 'state')
if st == 'available' then index(id, nil) end
redis.call('HSET', k, 'site', ARGV[3], 'langs', ARGV[4], 'skills', ARGV[5])
if ARGV[6] and ARGV[6] ~= '' then
  redis.call('HSET', k, 'prof', ARGV[6])
else
  redis.call('HDEL', k, 'prof')
end
redis.call('SADD', B .. 'agents', id)
if st == 'available' and redis.call('HGET', k, 'reach') ~= '0' then
  index(id, tonumber(redis.call('HGET', k, 'idle')))
end
return 1
""")

# ARGV: B, id, reach ('1', '0' or '' = keep what AMI last said)
LOGIN = _script(r"""
local id = ARGV[2]
local st = state_of(id)
if not st then return 'err:unknown' end
if ARGV[3] ~= '' then redis.call('HSET', B .. 'agent:' .. id, 'reach', ARGV[3]) end
if st ~= 'logged_out' then return st end
set_available(id, now_ms(), 'login')
return 'available'
""")

# ARGV: B, id
LOGOUT = _script(r"""
local id = ARGV[2]
local now = now_ms()
promote(now)
local st = state_of(id)
if not st then return 'err:unknown' end
if st == 'available' then index(id, nil) end
local k = B .. 'agent:' .. id
local nr = untagged(k)
redis.call('HSET', k, 'state', 'logged_out', 'since', ms(now))
redis.call('HDEL', k, 'call', 'until', 'reason', 'idle', 'pend', 'wcall', 'went', 'tagged')
redis.call('ZREM', B .. 'wrapup', id)
if st ~= 'logged_out' then log_state(id, 'logout', now, nr and {noreason = nr} or nil) end
return st
""")

# ARGV: B, id, reason
PAUSE = _script(r"""
local id = ARGV[2]
local now = now_ms()
promote(now)
local st = state_of(id)
if not st then return 'err:unknown' end
if st == 'logged_out' then return 'err:logged_out' end
if st == 'offered' or st == 'on_call' then
  redis.call('HSET', B .. 'agent:' .. id, 'pend', ARGV[3])
  return 'pause_pending'
end
if st == 'available' then index(id, nil) end
set_paused(id, ARGV[3], now)
return 'paused'
""")

# ARGV: B, id
RESUME = _script(r"""
local id = ARGV[2]
local st = state_of(id)
if not st then return 'err:unknown' end
if st == 'paused' then
  set_available(id, now_ms(), 'resume')
  return 'available'
end
redis.call('HDEL', B .. 'agent:' .. id, 'pend')
return st
""")

# ARGV: B, id, '1' | '0'
REACH = _script(r"""
local id = ARGV[2]
local st = state_of(id)
if not st then return 'err:unknown' end
local k = B .. 'agent:' .. id
local was = redis.call('HGET', k, 'reach') ~= '0'
local now = ARGV[3] == '1'
redis.call('HSET', k, 'reach', ARGV[3])
if st == 'available' and was ~= now then
  if now then index(id, tonumber(redis.call('HGET', k, 'idle'))) else index(id, nil) end
end
if was ~= now and st ~= 'logged_out' then
  log_state(id, now and 'reachable' or 'unreachable', now_ms())
end
return st
""")

# ARGV: B, id, call. One named agent, if free: a consult to a colleague or a
# supervisor reserves them as TAKE would, so nobody else offers them meanwhile.
RESERVE = _script(r"""
local id, call = ARGV[2], ARGV[3]
local now = now_ms()
promote(now)
local k = B .. 'agent:' .. id
local st = redis.call('HMGET', k, 'state', 'reach')
if st[1] ~= 'available' or st[2] == '0' then return 0 end
index(id, nil)
set_offered(id, call, '', now)
return 1
""")

# ARGV: B, id, call
ANSWERED = _script(r"""
local id = ARGV[2]
local k = B .. 'agent:' .. id
local st = redis.call('HMGET', k, 'state', 'call')
if st[1] ~= 'offered' or st[2] ~= ARGV[3] then return 0 end
local now = now_ms()
redis.call('HSET', k, 'state', 'on_call', 'since', ms(now))
log_state(id, 'on_call', now)
return 1
""")

# ARGV: B, id, wrapup ms, call ('' = any)
RELEASE = _script(r"""
local id = ARGV[2]
local k = B .. 'agent:' .. id
local st = redis.call('HMGET', k, 'state', 'call', 'pend', 'ent')
if st[1] ~= 'on_call' and st[1] ~= 'offered' then return false end
if ARGV[4] ~= '' and st[2] ~= ARGV[4] then return false end
local now = now_ms()
local w = tonumber(ARGV[3])
-- a call with wrap-up time may be tagged until the agent's next offer; one
-- released with none (a consult leg, a failed bridge) is not this agent's to tag
if w > 0 and st[1] == 'on_call' and st[2] then
  redis.call('HSET', k, 'wcall', st[2], 'went', st[4] or '')
  redis.call('HDEL', k, 'wext')
end
if st[3] then
  if w > 0 and st[1] == 'on_call' and st[2] then
    redis.call('HSET', k, 'state', 'wrapup')  -- a wrap-up of no length, left untagged
  end
  set_paused(id, st[3], now)
  return 'paused'
end
if w <= 0 then
  set_available(id, now)
  return 'available'
end
redis.call('HSET', k, 'state', 'wrapup', 'since', ms(now), 'until', ms(now + w))
redis.call('HDEL', k, 'call', 'idle')
redis.call('ZADD', B .. 'wrapup', ms(now + w), id)
log_state(id, 'wrapup', now, {call = st[2]})
return 'wrapup'
""")

# ARGV: B, id, call ('' = any), reason
MISSED = _script(r"""
local id = ARGV[2]
local st = redis.call('HMGET', B .. 'agent:' .. id, 'state', 'call')
if st[1] ~= 'offered' then return 0 end
if ARGV[3] ~= '' and st[2] ~= ARGV[3] then return 0 end
set_paused(id, ARGV[4], now_ms(), 'missed')
return 1
""")

# ARGV: B, id, call. The caller went away while the agent rang: no fault of
# the agent's, so the agent goes back with the idle time it had.
UNOFFER = _script(r"""
local id = ARGV[2]
local k = B .. 'agent:' .. id
local st = redis.call('HMGET', k, 'state', 'call', 'idle', 'pend')
if st[1] ~= 'offered' or st[2] ~= ARGV[3] then return 0 end
local now = now_ms()
if st[4] then
  set_paused(id, st[4], now)
else
  set_available(id, tonumber(st[3]) or now, 'unoffered', nil, now)
end
return 1
""")

# ARGV: B. Ends due wrap-ups; returns {server now ms, next wrap-up end ms or false}.
PROMOTE = _script(r"""
local now = now_ms()
promote(now)
local nxt = redis.call('ZRANGE', B .. 'wrapup', 0, 0, 'WITHSCORES')
if nxt[1] then return {ms(now), nxt[2]} end
return {ms(now), false}
""")
