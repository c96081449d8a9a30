//go:build race

package output_test

// raceDetector is whether the tests run under -race, which makes the
// emulator's bucket scans (one per request, over every object) about 8
// times slower.
const raceDetector = true
