package filters

// MaxOverrun is maxOverrun, for the tests.
const MaxOverrun = maxOverrun
