package milter

// SetListeningHook sets the function Listen calls as soon as a unix socket
// accepts connections; nil removes it.
func SetListeningHook(f func(path string)) { listeningHook = f }
