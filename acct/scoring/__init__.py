"""Scoring a trained run: `score` (evaluation on a split, `acct evaluate`), `predict` (`acct
predict`), the prediction files kept for every scored question, accuracy summaries, and the
`inspect-confusion` report."""
