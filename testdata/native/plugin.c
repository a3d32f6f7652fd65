/* A plugin the host loads with dlopen() after it started: the crash is in
 * a library that was not mapped when crashtrace attached. */
#include <stddef.h>

struct record {
    int fields;
};

static int count_fields(const struct record *r) {
    return r->fields; /* line 10: NULL dereference */
}

int plugin_parse(const struct record *r) {
    return count_fields(r) + 1; /* line 14 */
}
