-- Health of marina.dev/TrainingJob for Argo CD. Generated from manifests/argocd/health.lua by `make crds`; edit that file.
-- Argo CD health of a Marina resource, whatever its kind.
-- Marina's status follows kstatus: status.observedGeneration, and the conditions Ready, Reconciling and Stalled,
-- each with the generation it describes. The check reads only those, never a condition's reason (reasons are
-- shown in the message, not interpreted), so a new reason or a new kind needs no change here:
--   the operator has not yet seen this generation (no status, observedGeneration or a condition behind
--   metadata.generation)                                      -> Progressing
--   Stalled=True (failed, blocked, or serving the previous model after a rollback, with Ready=True)  -> Degraded
--   Reconciling=True (working, or waiting on something outside that it retries)   -> Progressing
--   Ready=True                                                -> Healthy
--   anything else (Ready False or Unknown, or missing)        -> Progressing
-- No Marina kind can be paused, so Suspended is never returned: a canary's pauses end by themselves.
-- Only Lua's base library is used: Argo CD runs scripts from argocd-cm without the string and math libraries.

local function describe(condition)
  local reason = condition.reason or ""
  local message = condition.message or ""
  if reason ~= "" and message ~= "" then
    return reason .. ": " .. message
  end
  if reason ~= "" then
    return reason
  end
  return message
end

local function health(status, message)
  return { status = status, message = message }
end

if obj.status == nil then
  return health("Progressing", "Waiting for the operator to report a status")
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if type(generation) == "number" then
  if type(observed) ~= "number" then
    return health("Progressing", "Waiting for the operator to observe generation " .. generation)
  end
  if observed < generation then
    return health("Progressing", "Waiting for the operator to observe generation " .. generation
      .. " (the status is of generation " .. observed .. ")")
  end
end

local conditions = {}
for _, condition in ipairs(obj.status.conditions or {}) do
  if condition.type == "Ready" or condition.type == "Reconciling" or condition.type == "Stalled" then
    local seen = condition.observedGeneration
    if type(generation) == "number" and type(seen) == "number" and seen < generation then
      return health("Progressing", "Waiting for the operator to observe generation " .. generation
        .. " (the " .. condition.type .. " condition is of generation " .. seen .. ")")
    end
    conditions[condition.type] = condition
  end
end

local stalled, reconciling, ready = conditions.Stalled, conditions.Reconciling, conditions.Ready
if stalled ~= nil and stalled.status == "True" then
  if (stalled.message or "") == "" and ready ~= nil then
    return health("Degraded", describe({ reason = stalled.reason, message = ready.message }))
  end
  return health("Degraded", describe(stalled))
end
if reconciling ~= nil and reconciling.status == "True" then
  return health("Progressing", describe(reconciling))
end
if ready == nil or (ready.status ~= "True" and ready.status ~= "False") then
  return health("Progressing", "Waiting for the Ready condition")
end
if ready.status == "True" then
  return health("Healthy", describe(ready))
end
return health("Progressing", describe(ready))
