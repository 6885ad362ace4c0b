-- vmbus.lua: a Wireshark dissector for govmbus captures (docs/CAPTURE.md).
--
-- A capture is pcapng with link type LINKTYPE_USER0 (147); each packet is
-- a record: a 24-byte record header, then a VMBus control message, a ring
-- packet (descriptor, type header, payload), nothing (a signal) or a JSON
-- event. Load it with
--   wireshark -X lua_script:contrib/wireshark/vmbus.lua FILE
--   tshark -X lua_script:contrib/wireshark/vmbus.lua -r FILE
-- or copy it into Wireshark's personal Lua plugins folder.

local vmbus = Proto("vmbus", "Hyper-V VMBus (govmbus capture)")

local KIND = { [1] = "control", [2] = "packet", [3] = "signal", [4] = "event" }
local DIR = { [0] = "guest→host", [1] = "host→guest" }
local MSG = {
  [1] = "OfferChannel", [2] = "RescindChannelOffer", [3] = "RequestOffers",
  [4] = "AllOffersDelivered", [5] = "OpenChannel", [6] = "OpenChannelResult",
  [7] = "CloseChannel", [8] = "GpadlHeader", [9] = "GpadlBody",
  [10] = "GpadlCreated", [11] = "GpadlTeardown", [12] = "GpadlTorndown",
  [13] = "RelIdReleased", [14] = "InitiateContact", [15] = "VersionResponse",
  [16] = "Unload", [17] = "UnloadComplete", [18] = "OpenReservedChannel",
  [19] = "CloseReservedChannel", [20] = "CloseReservedResponse",
  [21] = "TlConnectRequest", [22] = "ModifyChannel",
  [23] = "TlConnectRequestResult", [24] = "ModifyChannelResponse",
  [25] = "ModifyConnection", [26] = "ModifyConnectionResponse",
  [27] = "Pause", [28] = "PauseResponse", [29] = "Resume",
}
local PKT = { [6] = "InBand", [7] = "TransferPages", [9] = "GpaDirect", [11] = "Completion" }
local PIPE = { [1] = "data", [2] = "partial", [3] = "setup GPA direct", [4] = "teardown GPA direct" }
local IC = { [0] = "negotiate", [1] = "heartbeat", [2] = "kvp", [3] = "shutdown", [4] = "timesync", [5] = "vss", [7] = "filecopy" }
local BLKOP = { [1] = "IDENTIFY", [2] = "READ", [3] = "WRITE", [4] = "FLUSH" }
local CONNSTATE = { [0] = "ok", [1] = "low resources", [2] = "unknown" }

local f = {}
local function F(kind, name, label, ...) f[name] = ProtoField[kind]("vmbus." .. name, label, ...) end
-- The record header.
F("uint8", "version", "Record version")
F("uint8", "kind", "Kind", base.DEC, KIND)
F("uint8", "dir", "Direction", base.DEC, DIR)
F("uint8", "flags", "Record flags", base.HEX)
F("bool", "truncated", "Truncated", 8, nil, 0x01)
F("uint32", "channel", "Channel id")
F("uint64", "guest", "Guest")
F("uint32", "origlen", "Original length")
F("string", "event", "Event")
-- Control messages.
F("uint32", "msg.type", "Message type", base.DEC, MSG)
F("uint32", "msg.version", "Version", base.HEX)
F("uint32", "msg.target_vp", "Target VP")
F("uint64", "msg.interrupt_page", "Interrupt page", base.HEX)
F("uint8", "msg.sint", "Message SINT")
F("uint8", "msg.vtl", "Message VTL")
F("uint32", "msg.features", "Feature flags", base.HEX)
F("uint64", "msg.parent_monitor", "Parent→child monitor page", base.HEX)
F("uint64", "msg.child_monitor", "Child→parent monitor page", base.HEX)
F("string", "msg.client_id", "Client id")
F("uint8", "msg.version_supported", "Version supported")
F("uint8", "msg.conn_state", "Connection state", base.DEC, CONNSTATE)
F("uint32", "msg.conn_id", "Selected version / message connection id", base.HEX)
F("string", "msg.offer.type", "Interface type")
F("string", "msg.offer.instance", "Interface instance")
F("uint16", "msg.offer.flags", "Offer flags", base.HEX)
F("uint16", "msg.offer.mmio", "MMIO megabytes")
F("bytes", "msg.offer.user", "User defined")
F("uint32", "msg.offer.pipe_mode", "Pipe mode", base.DEC, { [0] = "byte", [4] = "message" })
F("uint16", "msg.offer.subchannel", "Subchannel index")
F("uint16", "msg.offer.mmio_optional", "MMIO megabytes optional")
F("uint8", "msg.offer.monitor_id", "Monitor id")
F("uint8", "msg.offer.monitor_allocated", "Monitor allocated", base.DEC, nil, 0x01)
F("uint16", "msg.offer.dedicated", "Dedicated interrupt", base.DEC, nil, 0x0001)
F("uint32", "msg.connection_id", "Connection id", base.HEX)
F("uint32", "msg.open_id", "Open id")
F("uint32", "msg.ring_gpadl", "Ring GPADL id", base.HEX)
F("uint32", "msg.downstream_offset", "Downstream ring page offset")
F("bytes", "msg.user_data", "User data")
F("uint16", "msg.event_flag", "Event flag")
F("uint16", "msg.open_flags", "Open flags", base.HEX)
F("uint32", "msg.status", "Status", base.HEX)
F("uint32", "msg.gpadl", "GPADL id", base.HEX)
F("uint16", "msg.range_buflen", "Range buffer length")
F("uint16", "msg.range_count", "Range count")
F("uint32", "msg.msgnum", "Message number")
F("uint64", "msg.pfn", "PFN", base.HEX)
F("uint32", "msg.target_sint", "Target SINT")
F("string", "msg.endpoint", "Endpoint id")
F("string", "msg.service", "Service id")
F("string", "msg.silo", "Silo id")
-- Ring packets.
F("uint16", "pkt.type", "Packet type", base.DEC, PKT)
F("uint16", "pkt.offset8", "Data offset (8-byte units)")
F("uint16", "pkt.len8", "Total length (8-byte units)")
F("uint16", "pkt.flags", "Packet flags", base.HEX)
F("bool", "pkt.completion_requested", "Completion requested", 16, nil, 0x0001)
F("uint64", "pkt.txid", "Transaction id", base.HEX)
F("uint32", "pkt.range_count", "Range count")
F("uint32", "pkt.gpa.count", "Byte count")
F("uint32", "pkt.gpa.offset", "Byte offset")
F("uint64", "pkt.gpa.pfn", "PFN", base.HEX)
F("uint16", "pkt.xfer.set", "Transfer page set")
F("uint8", "pkt.xfer.owns", "Sender owns set")
F("uint32", "pkt.xfer.count", "Byte count")
F("uint32", "pkt.xfer.offset", "Byte offset")
F("bytes", "pkt.payload", "Payload")
F("framenum", "pkt.request_in", "Request in frame", base.NONE, frametype and frametype.REQUEST or nil)
F("framenum", "pkt.response_in", "Response in frame", base.NONE, frametype and frametype.RESPONSE or nil)
F("relative_time", "pkt.time", "Time since request")
-- Pipe, IC, echo and blk payloads.
F("uint32", "pipe.type", "Pipe type", base.DEC, PIPE)
F("uint32", "pipe.size", "Pipe size")
F("string", "ic.framework", "Framework version")
F("uint16", "ic.type", "IC message type", base.DEC, IC)
F("string", "ic.msgversion", "Message version")
F("uint16", "ic.size", "IC body size")
F("uint32", "ic.status", "IC status", base.HEX)
F("uint8", "ic.txid", "IC transaction id")
F("uint8", "ic.flags", "IC flags", base.HEX)
F("bytes", "ic.body", "IC body")
F("uint64", "echo.seq", "Echo sequence")
F("uint32", "echo.crc", "Echo CRC-32C", base.HEX)
F("uint32", "echo.len", "Echo length")
F("uint32", "blk.op", "Blk op", base.DEC, BLKOP)
F("uint64", "blk.offset", "Blk offset")
F("uint32", "blk.length", "Blk length")
F("uint32", "blk.status", "Blk status")
F("uint32", "blk.block_size", "Blk block size")
F("uint64", "blk.size", "Blk size")
F("uint32", "blk.value", "Blk value")

local list = {}
for _, v in pairs(f) do list[#list + 1] = v end
vmbus.fields = list

local ef_short = ProtoExpert.new("vmbus.short", "Shorter than its layout", expert.group.MALFORMED, expert.severity.WARN)
vmbus.experts = { ef_short }

-- Per capture state, rebuilt on each full pass: the device of each
-- (guest, channel) from its OfferChannel, and the requests by transaction.
local devices, requests, responses = {}, {}, {}
function vmbus.init() devices, requests, responses = {}, {}, {} end

local ECHO = "5e1b7c3a-9d42-4f6e-8a15-2c07e9b4d831"
local BLK = "3f6c2d1e-8b7a-4c59-9e10-6a4d2b8f0c71"

-- guid formats 16 bytes at tvb range r in the Windows mixed-endian order.
local function guid(r)
  local b = r:bytes()
  local function h(i) return string.format("%02x", b:get_index(i)) end
  return h(3) .. h(2) .. h(1) .. h(0) .. "-" .. h(5) .. h(4) .. "-" .. h(7) .. h(6) .. "-" ..
    h(8) .. h(9) .. "-" .. h(10) .. h(11) .. h(12) .. h(13) .. h(14) .. h(15)
end

-- add puts field name over [off, off+n) of tvb t into tree, if the bytes are there.
local function add(tree, t, name, off, n, le)
  if off + n > t:len() then return nil end
  if le == false then return tree:add(f[name], t(off, n)) end
  return tree:add_le(f[name], t(off, n))
end

local function addguid(tree, t, name, off)
  if off + 16 > t:len() then return end
  tree:add(f[name], t(off, 16), guid(t(off, 16)))
end

local function u32(t, off) if off + 4 <= t:len() then return t(off, 4):le_uint() end end

local function control(t, tree, pinfo, guest)
  local typ = u32(t, 0)
  if not typ then tree:add_proto_expert_info(ef_short); return end
  local name = MSG[typ] or ("type " .. typ)
  local st = tree:add(vmbus, t(), "Control message: " .. name)
  st:add_le(f["msg.type"], t(0, 4))
  pinfo.cols.info:set(name)
  local n = t:len()
  local function chan(off) add(st, t, "channel", off, 4) end
  if typ == 14 then -- InitiateContact
    add(st, t, "msg.version", 8, 4); add(st, t, "msg.target_vp", 12, 4)
    local v = u32(t, 8) or 0
    if v >= 0x50000 then
      add(st, t, "msg.sint", 16, 1); add(st, t, "msg.vtl", 17, 1); add(st, t, "msg.features", 20, 4)
    else
      add(st, t, "msg.interrupt_page", 16, 8)
    end
    add(st, t, "msg.parent_monitor", 24, 8); add(st, t, "msg.child_monitor", 32, 8)
    if n >= 56 then addguid(st, t, "msg.client_id", 40) end
    pinfo.cols.info:append(string.format(" version %#x", v))
  elseif typ == 15 then -- VersionResponse
    add(st, t, "msg.version_supported", 8, 1); add(st, t, "msg.conn_state", 9, 1)
    add(st, t, "msg.conn_id", 12, 4)
    if n >= 20 then add(st, t, "msg.features", 16, 4) end
    if n >= 40 then add(st, t, "msg.parent_monitor", 24, 8); add(st, t, "msg.child_monitor", 32, 8) end
  elseif typ == 1 then -- OfferChannel
    addguid(st, t, "msg.offer.type", 8); addguid(st, t, "msg.offer.instance", 24)
    add(st, t, "msg.offer.flags", 56, 2); add(st, t, "msg.offer.mmio", 58, 2)
    local flags = n >= 58 and t(56, 2):le_uint() or 0
    if bit.band(flags, 0x10) ~= 0 then add(st, t, "msg.offer.pipe_mode", 60, 4) end
    add(st, t, "msg.offer.user", 60, 120, false)
    add(st, t, "msg.offer.subchannel", 180, 2); add(st, t, "msg.offer.mmio_optional", 182, 2)
    chan(184)
    add(st, t, "msg.offer.monitor_id", 188, 1); add(st, t, "msg.offer.monitor_allocated", 189, 1)
    add(st, t, "msg.offer.dedicated", 190, 2); add(st, t, "msg.connection_id", 192, 4)
    if n >= 188 and not pinfo.visited then
      local dev = "other"
      local ty = guid(t(8, 16))
      if bit.band(flags, 0x10) ~= 0 then dev = "pipe" elseif ty == ECHO then dev = "echo" elseif ty == BLK then dev = "blk" end
      devices[guest .. ":" .. u32(t, 184)] = dev
    end
    if n >= 188 then pinfo.cols.info:append(" channel " .. u32(t, 184)) end
  elseif typ == 5 then -- OpenChannel
    chan(8); add(st, t, "msg.open_id", 12, 4); add(st, t, "msg.ring_gpadl", 16, 4)
    add(st, t, "msg.target_vp", 20, 4); add(st, t, "msg.downstream_offset", 24, 4)
    add(st, t, "msg.user_data", 28, 120, false)
    if n >= 156 then add(st, t, "msg.connection_id", 148, 4); add(st, t, "msg.event_flag", 152, 2); add(st, t, "msg.open_flags", 154, 2) end
  elseif typ == 6 then -- OpenChannelResult
    chan(8); add(st, t, "msg.open_id", 12, 4); add(st, t, "msg.status", 16, 4)
  elseif typ == 2 or typ == 7 or typ == 13 or typ == 20 then -- channel id only
    chan(8)
  elseif typ == 8 then -- GpadlHeader
    chan(8); add(st, t, "msg.gpadl", 12, 4); add(st, t, "msg.range_buflen", 16, 2); add(st, t, "msg.range_count", 18, 2)
    add(st, t, "pkt.gpa.count", 20, 4); add(st, t, "pkt.gpa.offset", 24, 4)
    for off = 28, n - 8, 8 do st:add_le(f["msg.pfn"], t(off, 8)) end
  elseif typ == 9 then -- GpadlBody
    add(st, t, "msg.msgnum", 8, 4); add(st, t, "msg.gpadl", 12, 4)
    for off = 16, n - 8, 8 do st:add_le(f["msg.pfn"], t(off, 8)) end
  elseif typ == 10 then -- GpadlCreated
    chan(8); add(st, t, "msg.gpadl", 12, 4); add(st, t, "msg.status", 16, 4)
  elseif typ == 11 then -- GpadlTeardown
    chan(8); add(st, t, "msg.gpadl", 12, 4)
  elseif typ == 12 then -- GpadlTorndown
    add(st, t, "msg.gpadl", 8, 4)
  elseif typ == 18 then -- OpenReservedChannel
    chan(8); add(st, t, "msg.target_vp", 12, 4); add(st, t, "msg.target_sint", 16, 4)
    add(st, t, "msg.ring_gpadl", 20, 4); add(st, t, "msg.downstream_offset", 24, 4)
  elseif typ == 19 then -- CloseReservedChannel
    chan(8); add(st, t, "msg.target_vp", 12, 4); add(st, t, "msg.target_sint", 16, 4)
  elseif typ == 21 then -- TlConnectRequest
    addguid(st, t, "msg.endpoint", 8); addguid(st, t, "msg.service", 24)
    if n >= 56 then addguid(st, t, "msg.silo", 40) end
  elseif typ == 23 then -- TlConnectRequestResult
    addguid(st, t, "msg.endpoint", 8); addguid(st, t, "msg.service", 24); add(st, t, "msg.status", 40, 4)
  elseif typ == 22 then -- ModifyChannel
    chan(8); add(st, t, "msg.target_vp", 12, 4)
  elseif typ == 24 then -- ModifyChannelResponse
    chan(8); add(st, t, "msg.status", 12, 4)
  elseif typ == 25 then -- ModifyConnection
    add(st, t, "msg.parent_monitor", 8, 8); add(st, t, "msg.child_monitor", 16, 8)
  elseif typ == 26 then -- ModifyConnectionResponse
    add(st, t, "msg.conn_state", 8, 1)
  end
end

local function icmsg(t, tree, pinfo)
  if t:len() < 8 then return end
  local p = tree:add(vmbus, t(), "Pipe")
  p:add_le(f["pipe.type"], t(0, 4)); p:add_le(f["pipe.size"], t(4, 4))
  if t:len() < 28 then return end
  local i = tree:add(vmbus, t(8), "IC message")
  i:add(f["ic.framework"], t(8, 4), t(8, 2):le_uint() .. "." .. t(10, 2):le_uint())
  i:add_le(f["ic.type"], t(12, 2))
  i:add(f["ic.msgversion"], t(14, 4), t(14, 2):le_uint() .. "." .. t(16, 2):le_uint())
  i:add_le(f["ic.size"], t(18, 2)); i:add_le(f["ic.status"], t(20, 4))
  i:add(f["ic.txid"], t(24, 1)); i:add(f["ic.flags"], t(25, 1))
  if t:len() > 28 then i:add(f["ic.body"], t(28)) end
  pinfo.cols.info:append(" IC " .. (IC[t(12, 2):le_uint()] or "?"))
end

local function payload(t, tree, pinfo, dev, ptype)
  if t:len() == 0 then return end
  tree:add(f["pkt.payload"], t())
  if dev == "pipe" then
    icmsg(t, tree, pinfo)
  elseif dev == "echo" and t:len() >= 16 then
    local e = tree:add(vmbus, t(0, 16), "Echo")
    e:add_le(f["echo.seq"], t(0, 8)); e:add_le(f["echo.crc"], t(8, 4)); e:add_le(f["echo.len"], t(12, 4))
    pinfo.cols.info:append(" seq " .. t(0, 8):le_uint64())
  elseif dev == "blk" and t:len() >= 24 then
    local b = tree:add(vmbus, t(0, 24), "Blk")
    if ptype == 11 then
      b:add_le(f["blk.status"], t(0, 4)); b:add_le(f["blk.block_size"], t(4, 4))
      b:add_le(f["blk.size"], t(8, 8)); b:add_le(f["blk.value"], t(20, 4))
    else
      b:add_le(f["blk.op"], t(0, 4)); b:add_le(f["blk.offset"], t(8, 8)); b:add_le(f["blk.length"], t(16, 4))
      pinfo.cols.info:append(" " .. (BLKOP[t(0, 4):le_uint()] or "?"))
    end
  end
end

local function packet(t, tree, pinfo, guest, channel)
  if t:len() < 16 then tree:add_proto_expert_info(ef_short); return end
  local ptype, off8, flags = t(0, 2):le_uint(), t(2, 2):le_uint(), t(6, 2):le_uint()
  local txid = t(8, 8):le_uint64()
  local st = tree:add(vmbus, t(0, 16), "Descriptor: " .. (PKT[ptype] or ptype))
  st:add_le(f["pkt.type"], t(0, 2)); st:add_le(f["pkt.offset8"], t(2, 2)); st:add_le(f["pkt.len8"], t(4, 2))
  st:add_le(f["pkt.flags"], t(6, 2)); st:add_le(f["pkt.completion_requested"], t(6, 2)); st:add_le(f["pkt.txid"], t(8, 8))
  pinfo.cols.info:set((PKT[ptype] or ("packet type " .. ptype)) .. " txid 0x" .. txid:tohex())
  local off = 16
  if ptype == 9 and t:len() >= 24 then
    local count = t(20, 4):le_uint()
    st:add_le(f["pkt.range_count"], t(20, 4))
    off = 24
    for _ = 1, count do
      if off + 8 > t:len() then break end
      local bc, bo = t(off, 4):le_uint(), t(off + 4, 4):le_uint()
      local pages = math.floor((bo + bc + 4095) / 4096)
      local r = st:add(vmbus, t(off, math.min(8 + 8 * pages, t:len() - off)), "GPA range")
      r:add_le(f["pkt.gpa.count"], t(off, 4)); r:add_le(f["pkt.gpa.offset"], t(off + 4, 4))
      off = off + 8
      for _ = 1, pages do
        if off + 8 > t:len() then break end
        r:add_le(f["pkt.gpa.pfn"], t(off, 8)); off = off + 8
      end
    end
  elseif ptype == 7 and t:len() >= 24 then
    st:add_le(f["pkt.xfer.set"], t(16, 2)); st:add(f["pkt.xfer.owns"], t(18, 1))
    local count = t(20, 4):le_uint()
    st:add_le(f["pkt.range_count"], t(20, 4))
    off = 24
    for _ = 1, count do
      if off + 8 > t:len() then break end
      local r = st:add(vmbus, t(off, 8), "Transfer range")
      r:add_le(f["pkt.xfer.count"], t(off, 4)); r:add_le(f["pkt.xfer.offset"], t(off + 4, 4))
      off = off + 8
    end
  end
  local data = off8 * 8
  if data < off then data = off end
  -- Request/response by transaction id, per guest, channel and direction.
  local key = guest .. ":" .. channel .. ":" .. tostring(txid)
  local dir = pinfo.private["vmbus_dir"] or "0"
  if ptype == 11 then
    local req = requests[key .. ":" .. (dir == "1" and "0" or "1")]
    if req then
      st:add(f["pkt.request_in"], req.frame)
      local d = math.max(pinfo.rel_ts - req.ts, 0)
      local secs = math.floor(d)
      st:add(f["pkt.time"], NSTime.new(secs, math.floor((d - secs) * 1e9)))
      if not pinfo.visited then responses[req.frame] = pinfo.number end
    end
  elseif bit.band(flags, 1) ~= 0 then
    if not pinfo.visited then requests[key .. ":" .. dir] = { frame = pinfo.number, ts = pinfo.rel_ts } end
    if responses[pinfo.number] then st:add(f["pkt.response_in"], responses[pinfo.number]) end
  end
  if data < t:len() then
    payload(t(data), tree, pinfo, devices[guest .. ":" .. channel], ptype)
  end
end

function vmbus.dissector(tvb, pinfo, tree)
  if tvb:len() < 24 then return 0 end
  pinfo.cols.protocol:set("VMBus")
  local root = tree:add(vmbus, tvb(), "VMBus record")
  local h = root:add(vmbus, tvb(0, 24), "Record header")
  h:add(f.version, tvb(0, 1)); h:add(f.kind, tvb(1, 1)); h:add(f.dir, tvb(2, 1))
  h:add(f.flags, tvb(3, 1)); h:add(f.truncated, tvb(3, 1))
  local kind, dir = tvb(1, 1):uint(), tvb(2, 1):uint()
  -- A control message names its channel in its body, if it has one.
  if kind ~= 1 then h:add_le(f.channel, tvb(4, 4)) end
  h:add_le(f.guest, tvb(8, 8)); h:add_le(f.origlen, tvb(16, 4))
  local channel, guest = tvb(4, 4):le_uint(), tostring(tvb(8, 8):le_uint64())
  pinfo.private["vmbus_dir"] = tostring(dir)
  pinfo.cols.src:set(dir == 0 and ("guest " .. guest) or "host")
  pinfo.cols.dst:set(dir == 0 and "host" or ("guest " .. guest))
  local body = tvb(24):tvb()
  if tvb:len() == 24 then body = nil end
  if kind == 1 and body then
    control(body, root, pinfo, guest)
  elseif kind == 2 and body then
    packet(body, root, pinfo, guest, channel)
  elseif kind == 3 then
    pinfo.cols.info:set("Signal, channel " .. channel)
  elseif kind == 4 and body then
    root:add(f.event, tvb(24), tvb(24):string())
    pinfo.cols.info:set("Event " .. tvb(24):string())
  end
  return tvb:len()
end

DissectorTable.get("wtap_encap"):add(wtap.USER0, vmbus)
