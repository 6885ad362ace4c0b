package ic

import "github.com/govmbus/govmbus/protocol"

// Service is one of the integration components.
type Service uint8

// Services.
const (
	ServiceHeartbeat Service = iota
	ServiceShutdown
	ServiceTimeSync
	ServiceKVP
	numServices
)

// serviceInfo is what the two ends know of a service: its offer, its
// message type and the versions each end speaks, in its preference
// order (DEVICES.md §3.1, §3.4).
type serviceInfo struct {
	name     string
	typ      protocol.GUID
	instance protocol.GUID
	msg      MsgType
	// maxPacket is the largest packet Linux reads on the channel: its
	// incoming packet bound.
	maxPacket int
	// hostMessages are the message versions the VSP offers, ascending,
	// as OpenVMM lists them; guestMessages Linux 6.1's, preferred first.
	hostMessages, guestMessages []Version
}

var (
	v10 = Version{1, 0}
	v30 = Version{3, 0}
	v31 = Version{3, 1}
	v32 = Version{3, 2}
	v40 = Version{4, 0}
)

// Framework versions: the host offers both (ascending), Linux prefers 3.0.
var (
	hostFrameworks  = []Version{v10, v30}
	guestFrameworks = []Version{v30, v10}
)

var services = [numServices]serviceInfo{
	ServiceHeartbeat: {
		name: "heartbeat", msg: MsgHeartbeat, maxPacket: 4096,
		typ:          protocol.MustParseGUID("57164f39-9115-4e78-ab55-382f3bd5422d"),
		instance:     protocol.MustParseGUID("fd149e91-82e0-4a7d-afa6-2a4166cbd7c0"),
		hostMessages: []Version{v10, v30}, guestMessages: []Version{v30, v10},
	},
	ServiceShutdown: {
		name: "shutdown", msg: MsgShutdown, maxPacket: 4096,
		typ:          protocol.MustParseGUID("0e0b6031-5213-4934-818b-38d90ced39db"),
		instance:     protocol.MustParseGUID("b6650ff7-33bc-4840-8048-e0676786f393"),
		hostMessages: []Version{v10, v30, v31, v32}, guestMessages: []Version{v32, v31, v30, v10},
	},
	ServiceTimeSync: {
		name: "timesync", msg: MsgTimeSync, maxPacket: 4096,
		typ:          protocol.MustParseGUID("9527e630-d0ae-497b-adce-e80ab0175caf"),
		instance:     protocol.MustParseGUID("2dd1ce17-079e-403c-b352-a1921ee207ee"),
		hostMessages: []Version{v10, v30, v40}, guestMessages: []Version{v40, v30, v10},
	},
	ServiceKVP: {
		name: "kvp", msg: MsgKVP, maxPacket: 16384,
		typ:          protocol.MustParseGUID("a9a0f4e7-5a45-4d96-b827-8a841e8c03e6"),
		instance:     protocol.MustParseGUID("242ff919-07db-4180-9c2e-b86cb68c8c55"),
		hostMessages: []Version{v10, v30, v40}, guestMessages: []Version{v40, v30, v10},
	},
}

func (s Service) String() string {
	if s < numServices {
		return services[s].name
	}
	return "ic-?"
}

// InterfaceType is the offer's interface type of service s.
func (s Service) InterfaceType() protocol.GUID { return services[s].typ }

// InterfaceInstance is the instance Hyper-V offers service s with.
func (s Service) InterfaceInstance() protocol.GUID { return services[s].instance }

// ServiceOfType finds the service of an IC message type.
func ServiceOfType(t MsgType) (Service, bool) {
	for s := range numServices {
		if services[s].msg == t {
			return s, true
		}
	}
	return 0, false
}
