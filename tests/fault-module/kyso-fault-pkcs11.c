/*
 * kyso_fault_pkcs11.so: a PKCS#11 module that forwards every call to a real module (SoftHSM2 by
 * default, or $KYSO_FAULT_REAL_MODULE) and injects the faults field tokens show: pulled out
 * mid-batch, locked or expiring PINs, PIN pad readers, slow signing.
 *
 * Tests steer it through a small C API, reached by dlopen(path, RTLD_NOW | RTLD_NOLOAD) on the
 * module the code under test already loaded, so both sides share one instance:
 *   void kyso_fault_set(const char* key, long value);
 *   long kyso_fault_get(const char* key);
 *   void kyso_fault_reset(void);
 * Keys are listed in knob_names below and described in README.md.
 *
 * Removal is module-wide: every slot loses its token at once, like unplugging the only reader.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define KYSO_EXPORT __attribute__((visibility("default")))

KYSO_EXPORT void kyso_fault_set(const char* key, long value);
KYSO_EXPORT long kyso_fault_get(const char* key);
KYSO_EXPORT void kyso_fault_reset(void);

enum knob {
  COUNT_LOGIN,
  COUNT_SIGN,
  COUNT_SIGN_INIT,
  COUNT_OPEN_SESSION,
  REMOVE_AFTER_SIGNS, /* signatures left before the token is pulled; 0 = never */
  REMOVED,
  TOKEN_FLAGS_OR,
  FAIL_LOGIN_RV,
  SIGN_DELAY_US,
  ALWAYS_AUTHENTICATE, /* private keys report CKA_ALWAYS_AUTHENTICATE and need a context login */
  COUNT_CONTEXT_LOGIN,
  SIGN_SERIAL, /* one signature at a time across all sessions, as a token's single chip */
  COUNT_INITIALIZE,
  SIGN_FAIL_PERMILLE, /* this many C_Sign calls in 1000, at random, fail with CKR_DEVICE_ERROR */
  COUNT_SIGN_FAILED,  /* C_Sign calls failed by sign_fail_permille */
  IN_SIGN,            /* C_Sign calls in progress now (a gauge; reset leaves it) */
  KNOB_COUNT
};

static const char* const knob_names[KNOB_COUNT] = {
    [COUNT_LOGIN] = "count.C_Login",
    [COUNT_SIGN] = "count.C_Sign",
    [COUNT_SIGN_INIT] = "count.C_SignInit",
    [COUNT_OPEN_SESSION] = "count.C_OpenSession",
    [REMOVE_AFTER_SIGNS] = "remove_after_signs",
    [REMOVED] = "removed",
    [TOKEN_FLAGS_OR] = "token_flags_or",
    [FAIL_LOGIN_RV] = "fail_login_rv",
    [SIGN_DELAY_US] = "sign_delay_us",
    [ALWAYS_AUTHENTICATE] = "always_authenticate",
    [COUNT_CONTEXT_LOGIN] = "count.C_Login.context",
    [SIGN_SERIAL] = "sign_serial",
    [COUNT_INITIALIZE] = "count.C_Initialize",
    [SIGN_FAIL_PERMILLE] = "sign_fail_permille",
    [COUNT_SIGN_FAILED] = "count.C_Sign.failed",
    [IN_SIGN] = "in.C_Sign",
};

static atomic_long knobs[KNOB_COUNT];
static pthread_mutex_t chip_lock = PTHREAD_MUTEX_INITIALIZER; /* sign_serial */

static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST wrapped;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static CK_RV load_rv = CKR_GENERAL_ERROR;

/*
 * Sessions opened through us, stamped with the removal epoch they were opened in. A real token
 * forgets its sessions when pulled out; the real module behind us does not, so after
 * re-insertion we answer CKR_SESSION_HANDLE_INVALID for every session from an older epoch.
 */
struct session {
  CK_SESSION_HANDLE handle;
  CK_SLOT_ID slot;
  unsigned long epoch;
  int context_login_due; /* always_authenticate: C_SignInit done, context login not yet */
};

/* Guards the session table, the epoch and removal itself, so no signature slips past a removal. */
static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static struct session* sessions;
static size_t session_count, session_capacity;
static unsigned long epoch; /* bumped by every removal */

static int find_knob(const char* key) {
  for (int i = 0; i < KNOB_COUNT; ++i) {
    if (key != NULL && strcmp(key, knob_names[i]) == 0) return i;
  }
  /* A typo in a test would otherwise silently disable the fault it meant to inject. */
  fprintf(stderr, "kyso-fault-pkcs11: unknown key '%s'\n", key != NULL ? key : "(null)");
  return -1;
}

static int is_removed(void) {
  return atomic_load(&knobs[REMOVED]) != 0;
}

/* Caller holds state_lock. */
static void remove_token_locked(void) {
  ++epoch;
  atomic_store(&knobs[REMOVED], 1);
}

static CK_RV track_session(CK_SESSION_HANDLE handle, CK_SLOT_ID slot) {
  CK_RV rv = CKR_OK;
  pthread_mutex_lock(&state_lock);
  if (session_count == session_capacity) {
    size_t capacity = session_capacity != 0 ? 2 * session_capacity : 16;
    struct session* grown = realloc(sessions, capacity * sizeof *grown);
    if (grown == NULL) {
      rv = CKR_HOST_MEMORY;
    } else {
      sessions = grown;
      session_capacity = capacity;
    }
  }
  if (rv == CKR_OK) sessions[session_count++] = (struct session){handle, slot, epoch, 0};
  pthread_mutex_unlock(&state_lock);
  return rv;
}

static void forget_session(CK_SESSION_HANDLE handle) {
  pthread_mutex_lock(&state_lock);
  for (size_t i = 0; i < session_count; ++i) {
    if (sessions[i].handle == handle) {
      sessions[i] = sessions[--session_count];
      break;
    }
  }
  pthread_mutex_unlock(&state_lock);
}

static void forget_slot_sessions(CK_SLOT_ID slot) {
  pthread_mutex_lock(&state_lock);
  for (size_t i = 0; i < session_count;) {
    if (sessions[i].slot == slot) {
      sessions[i] = sessions[--session_count];
    } else {
      ++i;
    }
  }
  pthread_mutex_unlock(&state_lock);
}

static void forget_all_sessions(void) {
  pthread_mutex_lock(&state_lock);
  session_count = 0;
  pthread_mutex_unlock(&state_lock);
}

/* What a session-based call must answer before it may reach the real module. */
static CK_RV session_gate(CK_SESSION_HANDLE handle) {
  if (is_removed()) return CKR_DEVICE_REMOVED;
  CK_RV rv = CKR_OK;
  pthread_mutex_lock(&state_lock);
  for (size_t i = 0; i < session_count; ++i) {
    if (sessions[i].handle == handle) {
      if (sessions[i].epoch != epoch) rv = CKR_SESSION_HANDLE_INVALID;
      break;
    }
  }
  pthread_mutex_unlock(&state_lock);
  return rv;
}

/* Sets the session's context_login_due to `due`; returns its previous value (-1: unknown). */
static int swap_context_due(CK_SESSION_HANDLE handle, int due) {
  int old = -1;
  pthread_mutex_lock(&state_lock);
  for (size_t i = 0; i < session_count; ++i) {
    if (sessions[i].handle == handle) {
      old = sessions[i].context_login_due;
      sessions[i].context_login_due = due;
      break;
    }
  }
  pthread_mutex_unlock(&state_lock);
  return old;
}

static void count_call(enum knob counter) {
  atomic_fetch_add(&knobs[counter], 1);
}

static void sleep_ns(long ns) {
  struct timespec left = {.tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

/* sign_delay_us's sleep: in one piece when short (the token-speed figures), else in 10 ms steps
 * that re-read the knob, so that a test lowering it lets a C_Sign stuck in here come back. */
static void sign_delay(void) {
  long us = atomic_load(&knobs[SIGN_DELAY_US]);
  if (us <= 0) return;
  if (us <= 1000000) {
    sleep_ns(us * 1000L);
    return;
  }
  for (long slept = 0; slept < us; slept += 10000, us = atomic_load(&knobs[SIGN_DELAY_US])) {
    sleep_ns(10000L * 1000L);
  }
}

/* sign_fail_permille's dice: xorshift64 on one shared state (seeded by $KYSO_FAULT_SEED, else the
 * clock), so a run is repeatable from its seed when the calls come in the same order. */
static atomic_ulong dice_state;

static unsigned long roll_dice(void) {
  unsigned long old = atomic_load(&dice_state);
  unsigned long x;
  do {
    x = old != 0 ? old : 0x9E3779B97F4A7C15UL;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
  } while (!atomic_compare_exchange_weak(&dice_state, &old, x));
  return x;
}

static int sign_fails_now(void) {
  long permille = atomic_load(&knobs[SIGN_FAIL_PERMILLE]);
  if (permille <= 0) return 0;
  if ((long)(roll_dice() % 1000) >= permille) return 0;
  count_call(COUNT_SIGN_FAILED);
  return 1;
}

static void apply_settings(const char* text);

/*
 * $KYSO_FAULT_CONTROL names a file of "key=value" settings (separated by commas or line ends),
 * applied whenever its modification time changes: how a test steers the module inside another
 * process (kyso-agent under bench/soak pulls and re-inserts its token this way). Looked at, at
 * most every 20 ms, from the calls a token's users make all the time.
 */
static pthread_mutex_t control_lock = PTHREAD_MUTEX_INITIALIZER;
static struct timespec control_checked, control_mtime;

static void poll_control(void) {
  const char* path = getenv("KYSO_FAULT_CONTROL");
  if (path == NULL || *path == '\0') return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (pthread_mutex_trylock(&control_lock) != 0) return; /* another thread is looking */
  long since_ms = (now.tv_sec - control_checked.tv_sec) * 1000 +
                  (now.tv_nsec - control_checked.tv_nsec) / 1000000;
  struct stat st;
  if (since_ms >= 20 && stat(path, &st) == 0) {
    control_checked = now;
    if (st.st_mtim.tv_sec != control_mtime.tv_sec || st.st_mtim.tv_nsec != control_mtime.tv_nsec) {
      control_mtime = st.st_mtim;
      char buf[1024];
      FILE* f = fopen(path, "r");
      if (f != NULL) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        apply_settings(buf);
      }
    }
  } else if (since_ms >= 20) {
    control_checked = now;
  }
  pthread_mutex_unlock(&control_lock);
}

/*
 * Decides whether a signature the real module just made reaches the caller: not if the token was
 * pulled while it was being made (as on hardware). Counts it towards remove_after_signs and pulls
 * the token after the last one, so exactly N signatures succeed even with concurrent sessions.
 */
/* $KYSO_FAULT_SIGN_LOG: one line (the process id) appended per signature the token delivered,
 * so a test counts the signatures of processes it cannot reach (`kyso sign` run twice). One
 * O_APPEND write per line: lines of several processes never interleave. */
static void log_signature(void) {
  const char* path = getenv("KYSO_FAULT_SIGN_LOG");
  if (path == NULL || *path == '\0') return;
  const int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return;
  char line[32];
  const int n = snprintf(line, sizeof line, "%ld\n", (long)getpid());
  if (n > 0) (void)!write(fd, line, (size_t)n);
  close(fd);
}

static CK_RV deliver_signature(void) {
  CK_RV rv = CKR_OK;
  pthread_mutex_lock(&state_lock);
  if (is_removed()) {
    rv = CKR_DEVICE_REMOVED;
  } else {
    long left = atomic_load(&knobs[REMOVE_AFTER_SIGNS]);
    if (left > 0) {
      atomic_store(&knobs[REMOVE_AFTER_SIGNS], left - 1);
      if (left == 1) remove_token_locked();
    }
  }
  pthread_mutex_unlock(&state_lock);
  if (rv == CKR_OK) log_signature();
  return rv;
}

static CK_RV fault_Finalize(CK_VOID_PTR reserved) {
  CK_RV rv = real->C_Finalize(reserved);
  if (rv == CKR_OK) forget_all_sessions();
  return rv;
}

static CK_RV fault_GetSlotList(CK_BBOOL token_present, CK_SLOT_ID_PTR slots, CK_ULONG_PTR count) {
  poll_control();
  if (!token_present || !is_removed()) return real->C_GetSlotList(token_present, slots, count);
  if (count == NULL) return CKR_ARGUMENTS_BAD;
  *count = 0;
  return CKR_OK;
}

static CK_RV fault_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info) {
  CK_RV rv = real->C_GetSlotInfo(slot, info);
  if (rv == CKR_OK && is_removed()) info->flags &= ~(CK_FLAGS)CKF_TOKEN_PRESENT;
  return rv;
}

static CK_RV fault_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info) {
  poll_control();
  if (is_removed()) return CKR_TOKEN_NOT_PRESENT;
  CK_RV rv = real->C_GetTokenInfo(slot, info);
  if (rv == CKR_OK) info->flags |= (CK_FLAGS)atomic_load(&knobs[TOKEN_FLAGS_OR]);
  return rv;
}

static CK_RV fault_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR application,
                               CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session) {
  count_call(COUNT_OPEN_SESSION);
  if (is_removed()) return CKR_TOKEN_NOT_PRESENT;
  CK_RV rv = real->C_OpenSession(slot, flags, application, notify, session);
  if (rv != CKR_OK) return rv;
  rv = track_session(*session, slot);
  if (rv != CKR_OK) real->C_CloseSession(*session);
  return rv;
}

/* Always forwarded so the real module frees the session, even one we already declared dead. */
static CK_RV fault_CloseSession(CK_SESSION_HANDLE session) {
  CK_RV gate = session_gate(session);
  CK_RV rv = real->C_CloseSession(session);
  forget_session(session);
  return gate != CKR_OK ? gate : rv;
}

static CK_RV fault_CloseAllSessions(CK_SLOT_ID slot) {
  CK_RV rv = real->C_CloseAllSessions(slot);
  forget_slot_sessions(slot);
  return rv;
}

static CK_RV fault_GetSessionInfo(CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info) {
  CK_RV rv = session_gate(session);
  return rv != CKR_OK ? rv : real->C_GetSessionInfo(session, info);
}

static CK_RV fault_Login(CK_SESSION_HANDLE session, CK_USER_TYPE user_type, CK_UTF8CHAR_PTR pin,
                         CK_ULONG pin_len) {
  count_call(COUNT_LOGIN);
  CK_RV rv = session_gate(session);
  if (rv != CKR_OK) return rv;
  if (user_type == CKU_CONTEXT_SPECIFIC && atomic_load(&knobs[ALWAYS_AUTHENTICATE]) != 0) {
    /* The real module's keys do not ask for it: play the key that does. A PIN is checked
     * against KYSO_FAULT_CONTEXT_PIN when set (a PIN pad sends none). */
    count_call(COUNT_CONTEXT_LOGIN);
    const char* want = getenv("KYSO_FAULT_CONTEXT_PIN");
    if (pin != NULL && want != NULL &&
        (strlen(want) != pin_len || memcmp(want, pin, pin_len) != 0)) {
      return CKR_PIN_INCORRECT;
    }
    return swap_context_due(session, 0) == 1 ? CKR_OK : CKR_OPERATION_NOT_INITIALIZED;
  }
  rv = (CK_RV)atomic_load(&knobs[FAIL_LOGIN_RV]);
  if (rv != CKR_OK) return rv;
  /* A PIN pad reader takes a NULL PIN and collects it itself; the env var plays the keypad. */
  char* pad_pin = getenv("KYSO_FAULT_PINPAD_PIN");
  if (pin == NULL && pad_pin != NULL) {
    return real->C_Login(session, user_type, (CK_UTF8CHAR_PTR)pad_pin, strlen(pad_pin));
  }
  return real->C_Login(session, user_type, pin, pin_len);
}

static CK_RV fault_Logout(CK_SESSION_HANDLE session) {
  CK_RV rv = session_gate(session);
  return rv != CKR_OK ? rv : real->C_Logout(session);
}

static CK_RV fault_GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                                     CK_ATTRIBUTE_PTR attrs, CK_ULONG count) {
  CK_RV rv = session_gate(session);
  if (rv != CKR_OK) return rv;
  rv = real->C_GetAttributeValue(session, object, attrs, count);
  if (rv != CKR_OK || atomic_load(&knobs[ALWAYS_AUTHENTICATE]) == 0) return rv;
  /* Only objects that have the attribute at all (private keys) report it set. */
  for (CK_ULONG i = 0; i < count; ++i) {
    if (attrs[i].type == CKA_ALWAYS_AUTHENTICATE && attrs[i].pValue != NULL &&
        attrs[i].ulValueLen == sizeof(CK_BBOOL)) {
      *(CK_BBOOL*)attrs[i].pValue = CK_TRUE;
    }
  }
  return rv;
}

static CK_RV fault_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR attrs,
                                   CK_ULONG count) {
  CK_RV rv = session_gate(session);
  return rv != CKR_OK ? rv : real->C_FindObjectsInit(session, attrs, count);
}

static CK_RV fault_FindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR objects,
                               CK_ULONG max_count, CK_ULONG_PTR count) {
  CK_RV rv = session_gate(session);
  return rv != CKR_OK ? rv : real->C_FindObjects(session, objects, max_count, count);
}

static CK_RV fault_FindObjectsFinal(CK_SESSION_HANDLE session) {
  CK_RV rv = session_gate(session);
  return rv != CKR_OK ? rv : real->C_FindObjectsFinal(session);
}

static CK_RV fault_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                            CK_OBJECT_HANDLE key) {
  count_call(COUNT_SIGN_INIT);
  CK_RV rv = session_gate(session);
  if (rv != CKR_OK) return rv;
  rv = real->C_SignInit(session, mechanism, key);
  if (rv == CKR_OK && atomic_load(&knobs[ALWAYS_AUTHENTICATE]) != 0) swap_context_due(session, 1);
  return rv;
}

static CK_RV fault_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                        CK_BYTE_PTR signature, CK_ULONG_PTR signature_len) {
  count_call(COUNT_SIGN);
  poll_control();
  CK_RV rv = session_gate(session);
  if (rv != CKR_OK) return rv;
  if (signature != NULL && swap_context_due(session, 0) == 1) {
    /* No context login since C_SignInit: the key refuses, and the operation ends. */
    CK_BYTE scratch[1024];
    CK_ULONG scratch_len = sizeof scratch;
    (void)real->C_Sign(session, data, data_len, scratch, &scratch_len);
    return CKR_USER_NOT_LOGGED_IN;
  }
  const int serial = signature != NULL && atomic_load(&knobs[SIGN_SERIAL]) != 0;
  if (serial) pthread_mutex_lock(&chip_lock);
  atomic_fetch_add(&knobs[IN_SIGN], 1);
  if (signature != NULL) sign_delay();
  rv = real->C_Sign(session, data, data_len, signature, signature_len);
  atomic_fetch_sub(&knobs[IN_SIGN], 1);
  if (serial) pthread_mutex_unlock(&chip_lock);
  /* A failing chip: the operation ends without a signature, as CKR_DEVICE_ERROR does. */
  if (rv == CKR_OK && signature != NULL && sign_fails_now()) return CKR_DEVICE_ERROR;
  /* A length query (signature == NULL) produces no signature and does not count. */
  return rv == CKR_OK && signature != NULL ? deliver_signature() : rv;
}

static CK_RV fault_SignUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len) {
  CK_RV rv = session_gate(session);
  return rv != CKR_OK ? rv : real->C_SignUpdate(session, part, part_len);
}

static CK_RV fault_SignFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR signature,
                             CK_ULONG_PTR signature_len) {
  CK_RV rv = session_gate(session);
  return rv != CKR_OK ? rv : real->C_SignFinal(session, signature, signature_len);
}

/* KYSO_FAULT_PRESET="key=value,key=value": knobs set at load, for a module loaded by another
 * process (kyso-agent under a benchmark) that no test can reach through kyso_fault_set. */
static void apply_settings(const char* text) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", text);
  char* save = NULL;
  for (char* item = strtok_r(buf, ",\n", &save); item != NULL;
       item = strtok_r(NULL, ",\n", &save)) {
    while (*item == ' ') ++item;
    char* eq = strchr(item, '=');
    if (eq == NULL) continue;
    *eq = '\0';
    kyso_fault_set(item, strtol(eq + 1, NULL, 10));
  }
}

static void apply_preset(void) {
  const char* preset = getenv("KYSO_FAULT_PRESET");
  if (preset != NULL) apply_settings(preset);
}

static CK_RV fault_Initialize(CK_VOID_PTR args) {
  count_call(COUNT_INITIALIZE);
  return real->C_Initialize(args);
}

static void load_real_module(void) {
  /* A whole process's HSM slowed from the start (kyso-appliance nodes in bench/remote). */
  const char* delay = getenv("KYSO_FAULT_SIGN_DELAY_US");
  if (delay != NULL && *delay != '\0') kyso_fault_set("sign_delay_us", strtol(delay, NULL, 10));
  const char* seed = getenv("KYSO_FAULT_SEED");
  atomic_store(&dice_state, seed != NULL && *seed != '\0' ? strtoul(seed, NULL, 10)
                                                          : (unsigned long)time(NULL));
  const char* path = getenv("KYSO_FAULT_REAL_MODULE");
  if (path == NULL || *path == '\0') path = "/usr/lib/softhsm/libsofthsm2.so";
  /* Never dlclose'd: the wrapped function list must outlive any caller holding it. */
  void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "kyso-fault-pkcs11: cannot load real module: %s\n", dlerror());
    return;
  }
  CK_C_GetFunctionList get_list;
  void* sym = dlsym(lib, "C_GetFunctionList");
  if (sym == NULL) {
    fprintf(stderr, "kyso-fault-pkcs11: %s has no C_GetFunctionList\n", path);
    return;
  }
  memcpy(&get_list, &sym, sizeof get_list); /* ISO C has no object-to-function pointer cast */
  if (get_list == C_GetFunctionList) {
    fprintf(stderr, "kyso-fault-pkcs11: KYSO_FAULT_REAL_MODULE points at the fault module\n");
    return;
  }
  load_rv = get_list(&real);
  if (load_rv != CKR_OK) return;
  apply_preset();

  wrapped = *real;
  wrapped.C_GetFunctionList = C_GetFunctionList;
  wrapped.C_Initialize = fault_Initialize;
  wrapped.C_Finalize = fault_Finalize;
  wrapped.C_GetSlotList = fault_GetSlotList;
  wrapped.C_GetSlotInfo = fault_GetSlotInfo;
  wrapped.C_GetTokenInfo = fault_GetTokenInfo;
  wrapped.C_OpenSession = fault_OpenSession;
  wrapped.C_CloseSession = fault_CloseSession;
  wrapped.C_CloseAllSessions = fault_CloseAllSessions;
  wrapped.C_GetSessionInfo = fault_GetSessionInfo;
  wrapped.C_Login = fault_Login;
  wrapped.C_Logout = fault_Logout;
  wrapped.C_GetAttributeValue = fault_GetAttributeValue;
  wrapped.C_FindObjectsInit = fault_FindObjectsInit;
  wrapped.C_FindObjects = fault_FindObjects;
  wrapped.C_FindObjectsFinal = fault_FindObjectsFinal;
  wrapped.C_SignInit = fault_SignInit;
  wrapped.C_Sign = fault_Sign;
  wrapped.C_SignUpdate = fault_SignUpdate;
  wrapped.C_SignFinal = fault_SignFinal;
}

KYSO_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list) {
  if (list == NULL) return CKR_ARGUMENTS_BAD;
  pthread_once(&load_once, load_real_module);
  if (load_rv != CKR_OK) return load_rv;
  *list = &wrapped;
  return CKR_OK;
}

KYSO_EXPORT void kyso_fault_set(const char* key, long value) {
  int knob = find_knob(key);
  if (knob < 0) return;
  pthread_mutex_lock(&state_lock);
  if (knob == REMOVED && value != 0) {
    remove_token_locked();
  } else {
    atomic_store(&knobs[knob], value);
  }
  pthread_mutex_unlock(&state_lock);
}

KYSO_EXPORT long kyso_fault_get(const char* key) {
  int knob = find_knob(key);
  return knob >= 0 ? atomic_load(&knobs[knob]) : -1;
}

/* Zeroes counters and faults, re-inserting the token; sessions from before a removal stay dead. */
KYSO_EXPORT void kyso_fault_reset(void) {
  pthread_mutex_lock(&state_lock);
  for (int i = 0; i < KNOB_COUNT; ++i) {
    if (i != IN_SIGN) atomic_store(&knobs[i], 0);
  }
  pthread_mutex_unlock(&state_lock);
}
