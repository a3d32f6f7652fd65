/* Loads the plugin named by argv[1] with dlopen() and calls it with a NULL
 * record: it crashes inside the plugin. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: dlopen_host PLUGIN\n");
        return 64;
    }
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    int (*parse)(const void *) = (int (*)(const void *))dlsym(h, "plugin_parse");
    printf("plugin loaded\n");
    fflush(stdout);
    return parse(NULL); /* line 19 */
}
