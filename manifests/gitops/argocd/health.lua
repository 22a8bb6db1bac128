-- Argo CD health check for every skaha.broker.dev kind (SkahaPlatform, DockerContainer,
-- JupyterNotebook, Storage, Data, Compute, Session): they share one status convention
-- (phase, Ready/Reconciling/Stalled conditions, observedGeneration, reason, message).
-- Argo CD runs it with gopher-lua (Lua 5.1): `obj` is the object, the result is `hs`.
local hs = { status = "Progressing", message = "Waiting for the operator" }

local function condition(status, type_)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function explain(status, fallback)
  local text = status.message or fallback
  if status.reason ~= nil then
    text = status.reason .. ": " .. text
  end
  return text
end

local status = obj.status
if status == nil or status.phase == nil then
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration ~= generation then
  hs.message = "The operator has not yet seen generation " .. tostring(generation)
  return hs
end

local phase = status.phase
local stalled = condition(status, "Stalled")
if phase == "Failed" or phase == "Expired" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  hs.message = explain(status, phase)
  return hs
end

if phase == "Waiting" or phase == "Cancelled" then
  -- Waiting for its start time, or stopped on request: nothing is wrong, nothing to wait for.
  hs.status = "Suspended"
  hs.message = explain(status, phase)
  return hs
end

local ready = condition(status, "Ready")
if phase == "Completed" or (ready ~= nil and ready.status == "True") then
  hs.status = "Healthy"
  hs.message = explain(status, phase)
  return hs
end

hs.message = explain(status, phase)
return hs
