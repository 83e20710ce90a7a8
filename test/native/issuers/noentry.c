/* Test module: a valid shared object that is not an issuer (no entry symbols). */
int not_an_issuer(int x);
int not_an_issuer(int x) { return x + 1; }
