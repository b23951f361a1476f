"""Lua for choosing agents: TAKE (one caller) and DISPATCH (a round of callers).

Built on the pool's common functions (`scripts._COMMON`: keys, index,
promote); see `ari_app.agents.scripts` for the key layout. Selection: within
one routing step, the agent idle longest (at the preferred site if any there
matches); on equal idle time the most proficient in the caller's entity
(`proficiency` in agents.yaml, stored as the hash field `prof`), then the
lowest agent id.
"""

from __future__ import annotations

from ari_app.agents.scripts import _COMMON

_SELECT = r"""
-- The agent's configured proficiency in `skill` (1-10), 0 when none is set.
local function prof_of(id, skill)
  local p = redis.call('HGET', B .. 'agent:' .. id, 'prof')
  if not p then return 0 end
  for k, v in string.gmatch(p, '([^,=]+)=(%d+)') do
    if k == skill then return tonumber(v) end
  end
  return 0
end

-- The longest-idle agent in any (skill, language) index, at `site` first when
-- given; on equal idle time the most proficient in `skill`, then the lowest id.
local function pick(site, skills, langs, skill)
  local suffixes = {''}
  if site ~= '' then suffixes = {':' .. site, ''} end
  for _, suffix in ipairs(suffixes) do
    local tied, bscore = {}, nil
    for _, s in ipairs(skills) do
      for _, l in ipairs(langs) do
        local k = B .. 'av:' .. s .. ':' .. l .. suffix
        local r = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
        if r[1] then
          local sc = tonumber(r[2])
          if bscore == nil or sc < bscore then
            bscore, tied = sc, {k}
          elseif sc == bscore then
            tied[#tied + 1] = k
          end
        end
      end
    end
    if bscore then
      local best, bprof = nil, -1
      for _, k in ipairs(tied) do
        for _, id in ipairs(redis.call('ZRANGEBYSCORE', k, ms(bscore), ms(bscore))) do
          local p = prof_of(id, skill)
          if p > bprof or (p == bprof and id < best) then best, bprof = id, p end
        end
      end
      return best
    end
  end
  return nil
end

-- Reserve (available -> offered) the agent `pick` finds, for `call`; nil if none.
local function reserve_best(site, skills, langs, skill, call, now)
  for _ = 1, 32 do
    local best = pick(site, skills, langs, skill)
    if not best then return nil end
    local k = B .. 'agent:' .. best
    local st = redis.call('HMGET', k, 'state', 'reach')
    index(best, nil)
    if st[1] == 'available' and st[2] ~= '0' then
      set_offered(best, call, skill, now)
      return best
    end
    -- An index entry that disagrees with the hash: it was just removed; look again.
  end
  return nil
end

-- Read one candidate query from ARGV at i: site, ns, skills..., nl, langs...
-- Returns site, skills, langs, the next index.
local function read_query(i)
  local site = ARGV[i]
  local ns = tonumber(ARGV[i + 1])
  i = i + 2
  local skills = {}
  for j = 1, ns do skills[j] = ARGV[i]; i = i + 1 end
  local nl = tonumber(ARGV[i])
  i = i + 1
  local langs = {}
  for j = 1, nl do langs[j] = ARGV[i]; i = i + 1 end
  return site, skills, langs, i
end
"""


def _select(body: str) -> str:
    return _COMMON + _SELECT + body


# ARGV: B, call, skill (for proficiency), nq, then per query: site ('' = none),
# ns, skills..., nl, langs...
# Returns {agent id, 1-based index of the query that matched} or false.
TAKE = _select(r"""
local call, skill = ARGV[2], ARGV[3]
local now = now_ms()
promote(now)
local i = 5
for q = 1, tonumber(ARGV[4]) do
  local site, skills, langs
  site, skills, langs, i = read_query(i)
  local best = reserve_best(site, skills, langs, skill, call, now)
  if best then return {best, q} end
end
return false
""")

# One dispatch round for many callers, given in serving order (see
# queue/dispatch.py). ARGV: B, ncallers, then per caller: entity, call, nq,
# queries as in TAKE. A caller still waiting (its ZSCORE is there) gets the
# best agent of its narrowest query that has one; the ZREM that takes the
# caller out of its queue is the claim, in the same script as the agent's
# reservation, so two instances can neither offer one agent twice nor one
# caller twice. A query that found nobody is not asked again this round:
# agents only leave the indexes while the script runs.
# Returns {offers..., gone} with offers as flat {call, entity, agent, query}.
DISPATCH = _select(r"""
local now = now_ms()
promote(now)
local out, gone, empty = {}, 0, {}
local i = 3
for _ = 1, tonumber(ARGV[2]) do
  local entity, call, nq = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local queue = B .. 'wait:' .. entity
  local waiting = redis.call('ZSCORE', queue, call)
  if not waiting then gone = gone + 1 end
  local done = not waiting
  for q = 1, nq do
    local start = i
    local site, skills, langs
    site, skills, langs, i = read_query(i)
    local key = table.concat(ARGV, '\0', start, i - 1)
    if not done and not empty[key] then
      local best = reserve_best(site, skills, langs, entity, call, now)
      if best then
        redis.call('ZREM', queue, call)
        out[#out + 1] = call
        out[#out + 1] = entity
        out[#out + 1] = best
        out[#out + 1] = q
        done = true
      else
        empty[key] = true
      end
    end
  end
end
out[#out + 1] = gone
return out
""")
