/* A library the plugin frontend depends on: dlopen() of the frontend loads
 * it too, as ld.so resolves the frontend's DT_NEEDED. Nothing announces it
 * but ld.so's own list. */
struct record {
    int fields;
};

__attribute__((noinline)) int codec_decode(const struct record *r) {
    return r->fields * 2; /* line 9: NULL dereference */
}
