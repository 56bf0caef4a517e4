/* replay_main - a plain driver for the fuzz targets, for builds without
 * libFuzzer (gcc, or clang without -DAGATE_FUZZ=ON).
 *
 *   fuzz_frame_replay [-m MUTANTS] PATH...
 *
 * Runs LLVMFuzzerTestOneInput on every file under each PATH (directories
 * are read recursively, in name order), then on derived inputs: every
 * prefix of each file (truncation) and MUTANTS deterministic byte-flip
 * mutants of it (default 200). A crash, a sanitizer report or a broken
 * invariant (abort) fails the test; otherwise it prints "N passed, 0 failed". */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static long runs;
static int mutants = 200;

static void run(const uint8_t *p, size_t n)
{
    /* an exact-size copy so that reads past the end are caught */
    uint8_t *c = malloc(n ? n : 1);
    if (!c)
        abort();
    if (n)
        memcpy(c, p, n);
    LLVMFuzzerTestOneInput(c, n);
    free(c);
    runs++;
}

static uint64_t rng = 0x853c49e6748fea9bull;
static uint32_t rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

static void replay_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        perror(path);
        exit(1);
    }
    uint8_t *data = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            data = realloc(data, cap);
            if (!data)
                abort();
        }
        size_t got = fread(data + n, 1, cap - n, fp);
        if (got == 0)
            break;
        n += got;
    }
    fclose(fp);
    run(data, n);
    size_t maxcut = n < 2048 ? n : 2048;
    for (size_t k = 0; k < maxcut; k++)
        run(data, k);
    uint8_t *m = malloc(n ? n : 1);
    for (int i = 0; i < mutants && n > 0; i++) {
        memcpy(m, data, n);
        int flips = 1 + (int)(rnd() % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = rnd() % n;
            switch (rnd() % 4) {
            case 0: m[at] = (uint8_t)rnd(); break;
            case 1: m[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
            case 2: m[at] = (uint8_t[]){0x00, 0x7f, 0x80, 0xc1, 0xdd, 0xdf, 0xff}[rnd() % 7]; break;
            default: m[at] = m[rnd() % n]; break;
            }
        }
        run(m, n - (rnd() % 8 == 0 ? rnd() % n : 0));
    }
    free(m);
    free(data);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st)) {
        perror(path);
        exit(1);
    }
    if (!S_ISDIR(st.st_mode)) {
        replay_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        exit(1);
    }
    char **names = NULL;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (count + 1) * sizeof(*names));
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[count] = malloc(len);
        snprintf(names[count], len, "%s/%s", path, e->d_name);
        count++;
    }
    closedir(d);
    if (count)
        qsort(names, count, sizeof(*names), by_name);
    for (size_t i = 0; i < count; i++) {
        replay_path(names[i]);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    int first = 1;
    if (argc > 2 && strcmp(argv[1], "-m") == 0) {
        mutants = atoi(argv[2]);
        first = 3;
    }
    if (first >= argc) {
        fprintf(stderr, "usage: %s [-m MUTANTS] PATH...\n", argv[0]);
        return 2;
    }
    for (int i = first; i < argc; i++)
        replay_path(argv[i]);
    if (runs == 0) {
        fprintf(stderr, "no inputs found\n");
        printf("0 passed, 1 failed\n");
        return 1;
    }
    printf("%ld passed, 0 failed\n", runs);
    return 0;
}
