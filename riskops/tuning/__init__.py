"""Rule tuning: the rules page (each rule of the active version with its figures), drafts and their comparison."""
