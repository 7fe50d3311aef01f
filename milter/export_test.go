package milter

// SetListeningHook sets the function Listen calls as soon as a unix socket
// accepts connections; nil removes it.
func SetListeningHook(f func(path string)) { listeningHook = f }

// SetBoundHook sets the function Listen calls as soon as a unix socket is
// bound, before it gets its group and mode; nil removes it.
func SetBoundHook(f func(path string)) { boundHook = f }

// SetStaleHook sets the function Listen calls when it found the socket
// file stale, before removing it; nil removes it.
func SetStaleHook(f func(path string)) { staleHook = f }

// SetReleaseHook sets the function s's sessions call as they release a
// message, before its body is closed; set it before Serve.
func (s *Server) SetReleaseHook(f func()) { s.releaseHook = f }
