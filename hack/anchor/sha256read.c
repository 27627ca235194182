/*
 * The bench's anchor for hashing files (hack/bench_hashing.py, docs/hashing.md): the least a
 * program can do to print the SHA-256 of files. One thread per CPU; each takes the next file,
 * reads it with read(2) into its own fixed buffer (256 KiB unless -b) and hashes it with
 * OpenSSL's libcrypto (the SHA-256 code hashlib calls too). Prints "HEX  PATH" per file, in
 * argument order; exits 1 if a file could not be read.
 *
 *   gcc -O2 -pthread sha256read.c -o sha256read -lcrypto
 *   sha256read [-t THREADS] [-b BUFFER_BYTES] FILE...
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char **files;
static int nfiles;
static size_t buffer_size = 256 << 10;
static atomic_int next_file;
static unsigned char (*digests)[32];
static atomic_int failed;

static void *worker(void *unused) {
    (void)unused;
    unsigned char *buffer = malloc(buffer_size);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (buffer == NULL || ctx == NULL) {
        atomic_store(&failed, 1);
        return NULL;
    }
    for (int i; (i = atomic_fetch_add(&next_file, 1)) < nfiles;) {
        int fd = open(files[i], O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "%s: %s\n", files[i], strerror(errno));
            atomic_store(&failed, 1);
            continue;
        }
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        ssize_t got;
        while ((got = read(fd, buffer, buffer_size)) > 0) {
            EVP_DigestUpdate(ctx, buffer, (size_t)got);
        }
        if (got < 0) {
            fprintf(stderr, "%s: %s\n", files[i], strerror(errno));
            atomic_store(&failed, 1);
        }
        EVP_DigestFinal_ex(ctx, digests[i], NULL);
        close(fd);
    }
    EVP_MD_CTX_free(ctx);
    free(buffer);
    return NULL;
}

int main(int argc, char **argv) {
    long threads = sysconf(_SC_NPROCESSORS_ONLN);
    int opt;
    while ((opt = getopt(argc, argv, "t:b:")) != -1) {
        if (opt == 't') {
            threads = atol(optarg);
        } else if (opt == 'b') {
            buffer_size = (size_t)atol(optarg);
        } else {
            fprintf(stderr, "usage: %s [-t THREADS] [-b BUFFER_BYTES] FILE...\n", argv[0]);
            return 2;
        }
    }
    files = argv + optind;
    nfiles = argc - optind;
    if (threads < 1 || buffer_size < 1 || nfiles < 1) {
        fprintf(stderr, "usage: %s [-t THREADS] [-b BUFFER_BYTES] FILE...\n", argv[0]);
        return 2;
    }
    digests = calloc((size_t)nfiles, 32);
    pthread_t *ids = calloc((size_t)threads, sizeof(pthread_t));
    if (digests == NULL || ids == NULL) {
        return 1;
    }
    for (long t = 0; t < threads; t++) {
        pthread_create(&ids[t], NULL, worker, NULL);
    }
    for (long t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
    }
    for (int i = 0; i < nfiles; i++) {
        for (int k = 0; k < 32; k++) {
            printf("%02x", digests[i][k]);
        }
        printf("  %s\n", files[i]);
    }
    return atomic_load(&failed) ? 1 : 0;
}
