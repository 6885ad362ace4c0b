package protocol

// Messages that are a header and nothing else (8 bytes). Linux and OpenVMM
// give none of them a body; Decode accepts exactly 8 bytes.

// RequestOffers (type 3, guest→host) asks for every offer; the host answers
// with OfferChannel messages and then AllOffersDelivered.
type RequestOffers struct{}

// AllOffersDelivered (type 4, host→guest) ends the offers RequestOffers
// asked for.
type AllOffersDelivered struct{}

// Unload (type 16, guest→host) asks the host to drop the connection.
type Unload struct{}

// UnloadComplete (type 17, host→guest, from Win7) answers Unload.
type UnloadComplete struct{}

// Pause (type 27, guest→host, Copper with FeaturePauseResume) asks the
// host to stop sending control messages until Resume.
type Pause struct{}

// PauseResponse (type 28, host→guest) confirms Pause: the host sends no
// further control message until Resume.
type PauseResponse struct{}

// Resume (type 29, guest→host) lets the host send control messages again.
type Resume struct{}

func appendEmpty(b []byte, t MessageType) []byte { return appendHeader(b, t, HeaderSize) }

// Type is TypeRequestOffers.
func (*RequestOffers) Type() MessageType { return TypeRequestOffers }

// Size is HeaderSize.
func (*RequestOffers) Size() int { return HeaderSize }

// Append appends the 8-byte header.
func (*RequestOffers) Append(b []byte) []byte { return appendEmpty(b, TypeRequestOffers) }

func (*RequestOffers) unmarshal(b []byte) error { return checkLen(TypeRequestOffers, b, HeaderSize) }

// Type is TypeAllOffersDelivered.
func (*AllOffersDelivered) Type() MessageType { return TypeAllOffersDelivered }

// Size is HeaderSize.
func (*AllOffersDelivered) Size() int { return HeaderSize }

// Append appends the 8-byte header.
func (*AllOffersDelivered) Append(b []byte) []byte { return appendEmpty(b, TypeAllOffersDelivered) }

func (*AllOffersDelivered) unmarshal(b []byte) error {
	return checkLen(TypeAllOffersDelivered, b, HeaderSize)
}

// Type is TypeUnload.
func (*Unload) Type() MessageType { return TypeUnload }

// Size is HeaderSize.
func (*Unload) Size() int { return HeaderSize }

// Append appends the 8-byte header.
func (*Unload) Append(b []byte) []byte { return appendEmpty(b, TypeUnload) }

func (*Unload) unmarshal(b []byte) error { return checkLen(TypeUnload, b, HeaderSize) }

// Type is TypeUnloadComplete.
func (*UnloadComplete) Type() MessageType { return TypeUnloadComplete }

// Size is HeaderSize.
func (*UnloadComplete) Size() int { return HeaderSize }

// Append appends the 8-byte header.
func (*UnloadComplete) Append(b []byte) []byte { return appendEmpty(b, TypeUnloadComplete) }

func (*UnloadComplete) unmarshal(b []byte) error { return checkLen(TypeUnloadComplete, b, HeaderSize) }

// Type is TypePause.
func (*Pause) Type() MessageType { return TypePause }

// Size is HeaderSize.
func (*Pause) Size() int { return HeaderSize }

// Append appends the 8-byte header.
func (*Pause) Append(b []byte) []byte { return appendEmpty(b, TypePause) }

func (*Pause) unmarshal(b []byte) error { return checkLen(TypePause, b, HeaderSize) }

// Type is TypePauseResponse.
func (*PauseResponse) Type() MessageType { return TypePauseResponse }

// Size is HeaderSize.
func (*PauseResponse) Size() int { return HeaderSize }

// Append appends the 8-byte header.
func (*PauseResponse) Append(b []byte) []byte { return appendEmpty(b, TypePauseResponse) }

func (*PauseResponse) unmarshal(b []byte) error { return checkLen(TypePauseResponse, b, HeaderSize) }

// Type is TypeResume.
func (*Resume) Type() MessageType { return TypeResume }

// Size is HeaderSize.
func (*Resume) Size() int { return HeaderSize }

// Append appends the 8-byte header.
func (*Resume) Append(b []byte) []byte { return appendEmpty(b, TypeResume) }

func (*Resume) unmarshal(b []byte) error { return checkLen(TypeResume, b, HeaderSize) }
