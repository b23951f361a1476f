"""Lua for wrap-up: tag a call, end wrap-up early, extend it.

Built on the pool's common functions (`scripts._COMMON`); see
`ari_app.agents.scripts` for the key layout and the hash fields used here
(wcall, went, tagged, wext, until).
"""

from __future__ import annotations

from ari_app.agents.scripts import _script

# ARGV: B, id, call, mark ('1' = record that the call has a reason, '0' = only check).
# The agent may tag the call they are on, or the call of their last wrap-up until
# they are offered another. Returns the call's entity ('' if unknown) or 'err:...'.
TAG = _script(r"""
local id, call = ARGV[2], ARGV[3]
local now = now_ms()
promote(now)
local st = state_of(id)
if not st then return 'err:unknown' end
local k = B .. 'agent:' .. id
local h = redis.call('HMGET', k, 'call', 'ent', 'wcall', 'went')
local entity
if (st == 'on_call' or st == 'offered') and h[1] == call then
  entity = h[2] or ''
elseif h[3] == call then
  entity = h[4] or ''
elseif h[3] or h[1] then
  return 'err:call ' .. call .. ' is not this agent\'s call'
else
  return 'err:has no call to tag (a call may be tagged until the next one is offered)'
end
if ARGV[4] == '1' then redis.call('HSET', k, 'tagged', call) end
return 'ok:' .. entity
""")

# ARGV: B, id. Ends the agent's wrap-up now.
DONE = _script(r"""
local id = ARGV[2]
local now = now_ms()
promote(now)
local st = state_of(id)
if not st then return 'err:unknown' end
if st ~= 'wrapup' then return 'err:not in wrap-up (' .. st .. ')' end
set_available(id, now, 'wrapup_done')
return 'available'
""")

# ARGV: B, id, ms to add, most ms one wrap-up may be extended by in all.
# Returns the new end (ms) or 'err:...'.
EXTEND = _script(r"""
local id = ARGV[2]
local now = now_ms()
promote(now)
local st = state_of(id)
if not st then return 'err:unknown' end
if st ~= 'wrapup' then return 'err:not in wrap-up (' .. st .. ')' end
local k = B .. 'agent:' .. id
local h = redis.call('HMGET', k, 'until', 'wext')
local done = tonumber(h[2]) or 0
local add = math.min(tonumber(ARGV[3]), tonumber(ARGV[4]) - done)
if add <= 0 then return 'err:wrap-up already extended by the most allowed' end
local untl = tonumber(h[1]) + add
redis.call('HSET', k, 'until', ms(untl), 'wext', ms(done + add))
redis.call('ZADD', B .. 'wrapup', ms(untl), id)
log_state(id, 'extended', now)
return ms(untl)
""")
