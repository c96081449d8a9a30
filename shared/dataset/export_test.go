package dataset

// InflatedCap is the capacity of r's buffer for an inflated chunk: what
// reading one chunk holds, however large the chunk claims to be.
func InflatedCap(r *Reader) int { return cap(r.raw) }
