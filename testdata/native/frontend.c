/* A plugin that depends on another library (libcodec.so, found next to it
 * through its RUNPATH): loaded with dlopen(), it crashes inside the
 * dependency. */
struct record;

int codec_decode(const struct record *r);

__attribute__((noinline)) int plugin_parse(const struct record *r) {
    return codec_decode(r) + 1; /* line 9 */
}
