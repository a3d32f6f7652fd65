/*
 * The bundled demo target: a tiny "checkout service" whose payment worker
 * thread dereferences a NULL customer record on the third order. Built with
 * frame pointers and DWARF by `cargo xtask demo`.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct customer {
    char name[32];
    int loyalty_points;
};

struct order {
    int id;
    int amount_cents;
    struct customer *customer;
};

static struct customer alice = {"alice", 120};
static struct customer bob = {"bob", 40};

__attribute__((noinline)) static int apply_discount(const struct order *o) {
    /* Bug: orders from guests have no customer record. */
    return o->amount_cents - o->customer->loyalty_points;
}

__attribute__((noinline)) static void charge(const struct order *o) {
    int total = apply_discount(o);
    printf("order %d charged %d.%02d\n", o->id, total / 100, total % 100);
    fflush(stdout);
}

static void *payment_worker(void *arg) {
    struct order *orders = arg;
    for (int i = 0; i < 3; i++) {
        charge(&orders[i]);
        usleep(100 * 1000);
    }
    return NULL;
}

int main(void) {
    struct order orders[] = {
        {1001, 2599, &alice},
        {1002, 1250, &bob},
        {1003, 4999, NULL}, /* a guest checkout */
    };
    printf("checkout-service: processing %zu orders\n", sizeof orders / sizeof orders[0]);
    fflush(stdout);
    pthread_t worker;
    pthread_create(&worker, NULL, payment_worker, orders);
    pthread_join(worker, NULL);
    return 0;
}
