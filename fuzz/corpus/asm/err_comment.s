ld [12] /* unterminated
