/*
 * siprouter.sip._speedups -- C versions of the parser's fast paths.
 *
 * Each function here does exactly what one Python fast path in headers.py /
 * message.py does for the usual, canonical input, and returns None for
 * anything else; the caller then runs the Python code, which stays the
 * reference (it also reports the errors). tests/sip/test_speedups.py checks
 * that both give the same result on the RFC 4475 corpus and on random input.
 *
 * Why C: a proxy that sleeps between messages finds its caches cold at each
 * one, and the CPU it spends per message follows the number of distinct
 * memory lines (code and data) it touches. A regular expression match, a
 * split and a dozen string methods touch several hundred; one short loop over
 * the bytes touches a few (docs/performance.md, "Cold caches").
 *
 * Only strings of 1-byte kind (latin-1, what parse_message() produces) are
 * handled; others return None.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int is_alpha(Py_UCS1 c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static int is_digit(Py_UCS1 c) { return c >= '0' && c <= '9'; }
static int is_hex(Py_UCS1 c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
/* Python's str.isspace() / regex \s for a latin-1 character */
static int is_space(Py_UCS1 c) { return Py_UNICODE_ISSPACE(c); }

/* A Via parameter character: [^;\s,"=] */
static int via_param_char(Py_UCS1 c) {
    return c != ';' && c != ',' && c != '"' && c != '=' && !is_space(c);
}

/* a str of 1-byte kind (latin-1): the only strings handled here */
static int latin1(PyObject *s) {
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(s) < 0) {
        PyErr_Clear();
        return 0;
    }
#endif
    return PyUnicode_KIND(s) == PyUnicode_1BYTE_KIND;
}

static PyObject *substr(PyObject *s, Py_ssize_t start, Py_ssize_t end) {
    return PyUnicode_Substring(s, start, end);
}

/* a tuple of n new references (stolen); NULL, with all of them released, when
   one is NULL (its error set) or the tuple cannot be made */
static PyObject *tuple_of(Py_ssize_t n, PyObject **items) {
    PyObject *tuple = NULL;
    for (Py_ssize_t i = 0; i < n; i++)
        if (items[i] == NULL)
            goto fail;
    tuple = PyTuple_New(n);
    if (tuple == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++)
        PyTuple_SET_ITEM(tuple, i, items[i]);
    return tuple;
fail:
    for (Py_ssize_t i = 0; i < n; i++)
        Py_XDECREF(items[i]);
    return NULL;
}

/* append (text[a:b], text[va:vb]) to params; the value is None when va < 0 */
static int append_param(PyObject *params, PyObject *text, Py_ssize_t a, Py_ssize_t b,
                        Py_ssize_t va, Py_ssize_t vb) {
    PyObject *name = substr(text, a, b);
    if (name == NULL)
        return -1;
    PyObject *value = va >= 0 ? substr(text, va, vb) : Py_NewRef(Py_None);
    if (value == NULL) {
        Py_DECREF(name);
        return -1;
    }
    PyObject *pair = PyTuple_Pack(2, name, value);
    Py_DECREF(name);
    Py_DECREF(value);
    if (pair == NULL)
        return -1;
    int rc = PyList_Append(params, pair);
    Py_DECREF(pair);
    return rc;
}

/* ------------------------------------------------------------------ Via */
PyDoc_STRVAR(via_fast_doc,
"via_fast(raw) -> (transport, host, port_str, port, params, params_offset) or None\n\n"
"headers.Via's fast path: the whole of ``raw`` is\n"
"``SIP/2.0/<letters> <host or [v6]>[:<1-5 digits>][;name[=value]]...``, the port at\n"
"most 65535 and no ``rport=`` parameter (those take the Python code).");

static PyObject *via_fast(PyObject *self, PyObject *raw) {
    if (!PyUnicode_Check(raw) || !latin1(raw))
        Py_RETURN_NONE;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(raw);
    Py_ssize_t n = PyUnicode_GET_LENGTH(raw), i, t0, h0, h1, p0 = -1, p1 = -1, cut;
    long port = -1;
    if (n < 9 || memcmp(s, "SIP/2.0/", 8) != 0)
        Py_RETURN_NONE;
    i = t0 = 8;
    while (i < n && is_alpha(s[i])) i++;
    if (i == t0 || i >= n || s[i] != ' ')
        Py_RETURN_NONE;
    Py_ssize_t t1 = i++;
    h0 = i;
    if (i < n && s[i] == '[') {
        i++;
        while (i < n && (is_hex(s[i]) || s[i] == ':' || s[i] == '.')) i++;
        if (i == h0 + 1 || i >= n || s[i] != ']')
            Py_RETURN_NONE;
        i++;
    } else {
        while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || s[i] == '.' || s[i] == '-')) i++;
        if (i == h0)
            Py_RETURN_NONE;
    }
    h1 = i;
    if (i < n && s[i] == ':') {
        p0 = ++i;
        port = 0;
        while (i < n && is_digit(s[i]) && i - p0 < 6) port = port * 10 + (s[i++] - '0');
        p1 = i;
        if (p1 == p0 || p1 - p0 > 5 || port > 65535)
            Py_RETURN_NONE;
    }
    cut = i;     /* params start here (or the end) */
    /* parameters: (;name[=value])* up to the end */
    PyObject *params = PyList_New(0), *result = NULL;
    if (params == NULL)
        return NULL;
    while (i < n) {
        if (s[i] != ';')
            goto other;
        Py_ssize_t a = ++i, v = -1;
        while (i < n && via_param_char(s[i])) i++;
        Py_ssize_t b = i;
        if (b == a)
            goto other;
        if (i < n && s[i] == '=') {
            if (b - a == 5 && PyOS_strnicmp((const char *)s + a, "rport", 5) == 0)
                goto other;
            v = ++i;
            while (i < n && via_param_char(s[i])) i++;
        }
        if (append_param(params, raw, a, b, v, i) < 0)
            goto fail;
    }
    PyObject *items[6] = {
        substr(raw, t0, t1), substr(raw, h0, h1),
        p0 >= 0 ? substr(raw, p0, p1) : Py_NewRef(Py_None),
        p0 >= 0 ? PyLong_FromLong(port) : Py_NewRef(Py_None),
        Py_NewRef(params), PyLong_FromSsize_t(cut)};
    result = tuple_of(6, items);
fail:
    Py_DECREF(params);
    return result;
other:
    Py_DECREF(params);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ name-addr */
/* header params as in headers._parse_plain_params: list of (name, value|None);
   NULL with *bad set when a name is empty (the Python code raises) */
static int blank(Py_UCS1 c) { return c == ' ' || c == '\t'; }

static PyObject *plain_params(PyObject *text, const Py_UCS1 *s, Py_ssize_t start, Py_ssize_t n, int *bad) {
    PyObject *params = PyList_New(0);
    if (params == NULL)
        return NULL;
    Py_ssize_t i = start;
    for (;;) {
        Py_ssize_t item = i, end = i;
        while (end < n && s[end] != ';') end++;
        Py_ssize_t eq = item;
        while (eq < end && s[eq] != '=') eq++;
        Py_ssize_t a = item, b = eq;
        while (a < b && blank(s[a])) a++;
        while (b > a && blank(s[b - 1])) b--;
        if (a == b) {
            /* an empty name: fine only without '=' (an empty or blank item) */
            if (eq < end) {
                *bad = 1;
                Py_DECREF(params);
                return NULL;
            }
        } else {
            Py_ssize_t va = -1, vb = end;
            if (eq < end) {
                va = eq + 1;
                while (va < vb && blank(s[va])) va++;
                while (vb > va && blank(s[vb - 1])) vb--;
            }
            if (append_param(params, text, a, b, va, vb) < 0)
                goto fail;
        }
        if (end >= n)
            break;
        i = end + 1;
    }
    return params;
fail:
    Py_DECREF(params);
    return NULL;
}

PyDoc_STRVAR(name_addr_fast_doc,
"name_addr_fast(text) -> (display, uri_text, params) or None\n\n"
"headers.NameAddr's fast path on an already stripped value:\n"
"``[display or \"quoted\"] <uri>[;params]`` without quotes in the URI or the\n"
"parameters; display is stripped of blanks, params as _parse_plain_params()\n"
"gives them. None when the Python code is needed (or would raise).");

static PyObject *name_addr_fast(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text) || !latin1(text))
        Py_RETURN_NONE;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0, lt;
    if (n > 0 && s[0] == '"') {
        /* "[^"\\]*" then blanks then '<' */
        i = 1;
        while (i < n && s[i] != '"' && s[i] != '\\') i++;
        if (i >= n || s[i] != '"')
            Py_RETURN_NONE;
        i++;
        while (i < n && blank(s[i])) i++;
        if (i >= n || s[i] != '<')
            Py_RETURN_NONE;
        lt = i;
    } else {
        /* [^"<>;]*? [ \t]* '<': everything before the first '<' */
        while (i < n && s[i] != '"' && s[i] != '<' && s[i] != '>' && s[i] != ';') i++;
        if (i >= n || s[i] != '<')
            Py_RETURN_NONE;
        lt = i;
    }
    Py_ssize_t u0 = lt + 1, u1 = u0;
    while (u1 < n && s[u1] != '<' && s[u1] != '>' && s[u1] != '"' && !is_space(s[u1])) u1++;
    if (u1 == u0 || u1 >= n || s[u1] != '>')
        Py_RETURN_NONE;
    i = u1 + 1;
    while (i < n && blank(s[i])) i++;
    Py_ssize_t p0 = i;
    if (p0 < n && s[p0] != ';')
        Py_RETURN_NONE;
    for (Py_ssize_t k = p0; k < n; k++)
        if (s[k] == '"' || s[k] == '<' || s[k] == '>')
            Py_RETURN_NONE;
    /* display: text[:lt] stripped of blanks */
    Py_ssize_t d0 = 0, d1 = lt;
    while (d0 < d1 && blank(s[d0])) d0++;
    while (d1 > d0 && blank(s[d1 - 1])) d1--;
    PyObject *params;
    if (p0 < n) {
        int bad = 0;
        params = plain_params(text, s, p0 + 1, n, &bad);
        if (params == NULL) {
            if (bad)
                Py_RETURN_NONE;
            return NULL;
        }
    } else {
        params = PyList_New(0);
        if (params == NULL)
            return NULL;
    }
    PyObject *items[3] = {substr(text, d0, d1), substr(text, u0, u1), params};
    return tuple_of(3, items);
}

/* ------------------------------------------------------------------ message */
PyDoc_STRVAR(split_message_doc,
"split_message(text, names) -> (first, end, starts, keys, head, tail) or None\n\n"
"message.split_headers in C (the Python reference): ``first`` is the offset of\n"
"the first CRLF, ``end`` that of the CRLFCRLF ending the headers, ``starts`` the\n"
"offsets where the header lines between them start, followed by ``end + 2``\n"
"(line i is text[starts[i]:starts[i + 1] - 2]; an empty list when there is no\n"
"header), and ``keys`` for each line its canonical name: from\n"
"a table of the usual spellings (\"Via\", \"Call-ID\"...), else\n"
"``names.get(line[:colon + 1])`` (None for a name not in the dict, or a line\n"
"without a colon). ``head, tail`` are (method, Request-URI) for a request line\n"
"``METHOD SP URI SP SIP/2.0`` of a known method, (status, reason) for a status\n"
"line ``SIP/2.0 SP DDD [SP reason]``, else (None, None). None when there is no\n"
"CRLF or no CRLFCRLF, or a bare CR or LF is in the header block.");

/* The usual spellings of the usual header names, and their canonical keys
 * (headers.canonical_name): found without making a string or hashing one. */
static const char *const known_names[][2] = {
    {"Via", "via"}, {"From", "from"}, {"To", "to"}, {"Call-ID", "call-id"},
    {"CSeq", "cseq"}, {"Max-Forwards", "max-forwards"}, {"Content-Length", "content-length"},
    {"Contact", "contact"}, {"Route", "route"}, {"Record-Route", "record-route"},
    {"Content-Type", "content-type"}, {"User-Agent", "user-agent"}, {"Allow", "allow"},
    {"Supported", "supported"}, {"Accept", "accept"}, {"Expires", "expires"},
    {"Server", "server"}, {"Subject", "subject"}, {"Require", "require"},
    {"Authorization", "authorization"}, {"Proxy-Authorization", "proxy-authorization"},
    {"WWW-Authenticate", "www-authenticate"}, {"Proxy-Authenticate", "proxy-authenticate"},
    {"Event", "event"}, {"Date", "date"}, {"Call-Id", "call-id"}, {"Cseq", "cseq"},
    {"v", "via"}, {"f", "from"}, {"t", "to"}, {"i", "call-id"}, {"m", "contact"},
    {"l", "content-length"}, {"c", "content-type"},
};
#define KNOWN_NAMES (sizeof(known_names) / sizeof(known_names[0]))
static PyObject *known_keys[KNOWN_NAMES];   /* interned canonical keys */
static Py_ssize_t known_lengths[KNOWN_NAMES];

/* The interned key of a header name s[0:n] when it is a usual spelling, else NULL
 * (borrowed reference). */
static PyObject *known_key(const Py_UCS1 *s, Py_ssize_t n) {
    for (size_t k = 0; k < KNOWN_NAMES; k++)
        if (known_lengths[k] == n && memcmp(known_names[k][0], s, (size_t)n) == 0)
            return known_keys[k];
    return NULL;
}

static const char *const known_methods[] = {
    "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "INFO", "PRACK", "UPDATE",
    "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
};
#define KNOWN_METHODS (sizeof(known_methods) / sizeof(known_methods[0]))
static PyObject *method_objects[KNOWN_METHODS];   /* interned */

/* The start line s[0:n] as (head, tail): see split_message_doc. New references,
 * both None when the line is not one of the two simple forms; 0, or -1 on error. */
static int start_line(PyObject *text, const Py_UCS1 *s, Py_ssize_t n,
                      PyObject **head, PyObject **tail) {
    *head = *tail = NULL;
    if (n >= 11 && memcmp(s, "SIP/2.0 ", 8) == 0) {
        if (!is_digit(s[8]) || !is_digit(s[9]) || !is_digit(s[10]) || (n > 11 && s[11] != ' '))
            goto other;
        *head = PyLong_FromLong((s[8] - '0') * 100 + (s[9] - '0') * 10 + (s[10] - '0'));
        *tail = substr(text, n > 11 ? 12 : 11, n);
    } else {
        Py_ssize_t sp1 = 0;
        while (sp1 < n && s[sp1] != ' ')
            sp1++;
        if (sp1 == n || n - 8 <= sp1 + 1 || memcmp(s + n - 8, " SIP/2.0", 8) != 0)
            goto other;
        for (Py_ssize_t i = sp1 + 1; i < n - 8; i++)
            if (s[i] == ' ')
                goto other;
        PyObject *method = NULL;
        for (size_t k = 0; k < KNOWN_METHODS; k++)
            if ((Py_ssize_t)strlen(known_methods[k]) == sp1 && memcmp(known_methods[k], s, sp1) == 0) {
                method = method_objects[k];
                break;
            }
        if (method == NULL)
            goto other;
        *head = Py_NewRef(method);
        *tail = substr(text, sp1 + 1, n - 8);
    }
    if (*head == NULL || *tail == NULL) {
        Py_CLEAR(*head);
        Py_CLEAR(*tail);
        return -1;
    }
    return 0;
other:
    *head = Py_NewRef(Py_None);
    *tail = Py_NewRef(Py_None);
    return 0;
}

static PyObject *split_message(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "split_message(text: str, names: dict)");
        return NULL;
    }
    PyObject *text = args[0], *names = args[1];
    if (!PyUnicode_Check(text) || !latin1(text))
        Py_RETURN_NONE;
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), first = -1, end = -1, i;
    for (i = 0; i + 1 < n; i++)
        if (s[i] == '\r' && s[i + 1] == '\n') {
            first = i;
            break;
        }
    if (first < 0)
        Py_RETURN_NONE;
    Py_ssize_t count = 1;
    /* the header block: CRLF-separated lines, no other CR or LF */
    for (i = first; i + 3 < n; i++) {
        if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n') {
            end = i;
            break;
        }
    }
    if (end < 0)
        Py_RETURN_NONE;
    for (i = first + 2; i < end; i++) {
        if (s[i] == '\r') {
            if (s[i + 1] != '\n')
                Py_RETURN_NONE;
            count++;
            i++;
        } else if (s[i] == '\n') {
            Py_RETURN_NONE;
        }
    }
    if (end == first)
        count = 0;
    PyObject *starts = PyList_New(count ? count + 1 : 0), *keys = PyList_New(count);
    if (starts == NULL || keys == NULL)
        goto fail;
    Py_ssize_t start = first + 2;
    for (Py_ssize_t k = 0; k < count; k++) {
        Py_ssize_t stop = start, colon = -1;
        while (stop < end && s[stop] != '\r') {
            if (colon < 0 && s[stop] == ':')
                colon = stop;
            stop++;
        }
        PyObject *offset = PyLong_FromSsize_t(start);
        if (offset == NULL)
            goto fail;
        PyList_SET_ITEM(starts, k, offset);
        PyObject *key = NULL;
        if (colon >= 0)
            key = known_key(s + start, colon - start);
        if (key == NULL && colon >= 0) {
            PyObject *name = PyUnicode_Substring(text, start, colon + 1);
            if (name == NULL)
                goto fail;
            key = PyDict_GetItemWithError(names, name);
            Py_DECREF(name);
            if (key == NULL && PyErr_Occurred())
                goto fail;
        }
        PyList_SET_ITEM(keys, k, Py_NewRef(key != NULL ? key : Py_None));
        start = stop + 2;
    }
    if (count) {
        PyObject *offset = PyLong_FromSsize_t(end + 2);
        if (offset == NULL)
            goto fail;
        PyList_SET_ITEM(starts, count, offset);
    }
    PyObject *head, *tail;
    if (start_line(text, s, first, &head, &tail) < 0)
        goto fail;
    PyObject *items[6] = {PyLong_FromSsize_t(first), PyLong_FromSsize_t(end), starts, keys,
                          head, tail};
    return tuple_of(6, items);
fail:
    Py_XDECREF(starts);
    Py_XDECREF(keys);
    return NULL;
}

/* ------------------------------------------------------------------ header names */
/* Does ``entry`` (an item of SipMessage.keys) equal ``key``? Two interned strings
 * are equal only if they are the same object, so for the canonical names
 * (interned) this is one pointer comparison; anything else is compared by value. */
static int same_key(PyObject *entry, PyObject *key, int key_interned) {
    if (entry == key)
        return 1;
    if (!PyUnicode_CheckExact(entry))
        return PyObject_RichCompareBool(entry, key, Py_EQ);
    if (key_interned && PyUnicode_CHECK_INTERNED(entry))
        return 0;
    Py_ssize_t n = PyUnicode_GET_LENGTH(entry);
    if (n != PyUnicode_GET_LENGTH(key) || PyUnicode_KIND(entry) != PyUnicode_KIND(key))
        return 0;
    return memcmp(PyUnicode_DATA(entry), PyUnicode_DATA(key), n * PyUnicode_KIND(key)) == 0;
}

/* Scan ``keys`` (args[0]) for ``key`` (args[1]): with ``first``, the index of the
 * first match or -1; otherwise the number of matches. NULL on a bad call. */
static PyObject *scan_keys(PyObject *const *args, Py_ssize_t nargs, int first,
                           const char *usage) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyUnicode_CheckExact(args[1])) {
        PyErr_Format(PyExc_TypeError, "%s(keys: list, key: str)", usage);
        return NULL;
    }
    PyObject *keys = args[0], *key = args[1];
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(key) < 0)
        return NULL;
#endif
    int interned = PyUnicode_CHECK_INTERNED(key) != 0;
    Py_ssize_t count = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        int same = same_key(PyList_GET_ITEM(keys, i), key, interned);
        if (same < 0)
            return NULL;
        if (same && first)
            return PyLong_FromSsize_t(i);
        count += same;
    }
    return PyLong_FromSsize_t(first ? -1 : count);
}

PyDoc_STRVAR(key_index_doc,
"key_index(keys, key) -> int\n\n"
"``keys.index(key)``, or -1 when ``key`` is not in the list.");

static PyObject *key_index(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return scan_keys(args, nargs, 1, "key_index");
}

PyDoc_STRVAR(key_count_doc,
"key_count(keys, key) -> int\n\n"
"``keys.count(key)``.");

static PyObject *key_count(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    return scan_keys(args, nargs, 0, "key_count");
}

PyDoc_STRVAR(key_repeats_doc,
"key_repeats(keys) -> tuple\n\n"
"message.key_repeats: the keys that occur more than once, each once, in the\n"
"order of their first occurrence (usually none).");

static PyObject *key_repeats(PyObject *self, PyObject *keys) {
    if (!PyList_Check(keys)) {
        PyErr_SetString(PyExc_TypeError, "key_repeats(keys: list)");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(keys);
    PyObject *found = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "key_repeats: keys must be str");
            goto fail;
        }
        int interned = PyUnicode_CHECK_INTERNED(key) != 0, seen = 0, again = 0;
        for (Py_ssize_t j = 0; j < i && !seen; j++)
            if ((seen = same_key(PyList_GET_ITEM(keys, j), key, interned)) < 0)
                goto fail;
        if (seen)
            continue;   /* counted at its first occurrence */
        for (Py_ssize_t j = i + 1; j < n && !again; j++)
            if ((again = same_key(PyList_GET_ITEM(keys, j), key, interned)) < 0)
                goto fail;
        if (again) {
            if (found == NULL && (found = PyList_New(0)) == NULL)
                goto fail;
            if (PyList_Append(found, key) < 0)
                goto fail;
        }
    }
    if (found == NULL)
        return PyTuple_New(0);    /* the shared empty tuple */
    PyObject *result = PyList_AsTuple(found);
    Py_DECREF(found);
    return result;
fail:
    Py_XDECREF(found);
    return NULL;
}

PyDoc_STRVAR(first_missing_doc,
"first_missing(keys, wanted) -> int\n\n"
"message.first_missing: the index in the tuple ``wanted`` of the first key that\n"
"is not in the list ``keys``, or -1 when all are.");

static PyObject *first_missing(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyList_Check(args[0]) || !PyTuple_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "first_missing(keys: list, wanted: tuple)");
        return NULL;
    }
    PyObject *keys = args[0], *wanted = args[1];
    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(wanted); w++) {
        PyObject *key = PyTuple_GET_ITEM(wanted, w);
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "first_missing: wanted keys must be str");
            return NULL;
        }
        int interned = PyUnicode_CHECK_INTERNED(key) != 0, seen = 0;
        for (Py_ssize_t j = 0; j < PyList_GET_SIZE(keys) && !seen; j++)
            if ((seen = same_key(PyList_GET_ITEM(keys, j), key, interned)) < 0)
                return NULL;
        if (!seen)
            return PyLong_FromSsize_t(w);
    }
    return PyLong_FromLong(-1);
}

/* ------------------------------------------------------------------ CRC */
PyDoc_STRVAR(crc16_x25_doc,
"crc16_x25(text) -> int or None\n\n"
"routing.replies.crc16_x25 (CRC-16/X-25 over the latin-1 bytes); None for a\n"
"string that is not of 1-byte kind.");

/* CRC-16/X-25 continued over a latin-1 str: reflected polynomial 0x8408, four bits
 * at a time (a 32-byte table); start with 0xFFFF, complement the end result */
static unsigned int crc16_x25_step(unsigned int crc, PyObject *text) {
    static const unsigned short nibble[16] = {
        0x0000, 0x1081, 0x2102, 0x3183, 0x4204, 0x5285, 0x6306, 0x7387,
        0x8408, 0x9489, 0xa50a, 0xb58b, 0xc60c, 0xd68d, 0xe70e, 0xf78f,
    };
    const Py_UCS1 *s = PyUnicode_1BYTE_DATA(text);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(text); i++) {
        crc ^= s[i];
        crc = (crc >> 4) ^ nibble[crc & 0xF];
        crc = (crc >> 4) ^ nibble[crc & 0xF];
    }
    return crc;
}

static PyObject *crc16_x25(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text) || !latin1(text))
        Py_RETURN_NONE;
    return PyLong_FromLong((long)(crc16_x25_step(0xFFFF, text) ^ 0xFFFF));
}

PyDoc_STRVAR(totag_sums_doc,
"totag_sums(host, port, branch, callid) -> str or None\n\n"
"routing.replies.totag_sums: the two CRC-16/X-25 sums of a local To-tag,\n"
"crc(host + port + branch) and crc(port + host + callid), each as 4 hex digits,\n"
"least significant first; None when a string is not of 1-byte kind.");

static void nibbles_lsb_first(unsigned int value, char *out) {
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 4; i++)
        out[i] = hex[(value >> (4 * i)) & 0xF];
}

static PyObject *totag_sums(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "totag_sums(host, port, branch, callid)");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < 4; i++)
        if (!PyUnicode_Check(args[i]) || !latin1(args[i]))
            Py_RETURN_NONE;
    PyObject *host = args[0], *port = args[1], *branch = args[2], *callid = args[3];
    unsigned int first = crc16_x25_step(crc16_x25_step(crc16_x25_step(0xFFFF, host), port),
                                        branch) ^ 0xFFFF;
    unsigned int second = crc16_x25_step(crc16_x25_step(crc16_x25_step(0xFFFF, port), host),
                                         callid) ^ 0xFFFF;
    char out[8];
    nibbles_lsb_first(first, out);
    nibbles_lsb_first(second, out + 4);
    return PyUnicode_FromStringAndSize(out, 8);
}

/* ------------------------------------------------------------------ signals */
PyDoc_STRVAR(check_signals_doc,
"check_signals() -> None\n\n"
"Run the Python handlers of signals that arrived since the last check. A loop\n"
"compiled by mypyc runs no bytecode, so nothing else would run them between\n"
"two system calls (transport/worker.py calls this once per round).");

static PyObject *check_signals(PyObject *self, PyObject *unused) {
    if (PyErr_CheckSignals() < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ module */
static PyMethodDef methods[] = {
    {"split_message", (PyCFunction)(void (*)(void))split_message, METH_FASTCALL, split_message_doc},
    {"via_fast", via_fast, METH_O, via_fast_doc},
    {"name_addr_fast", name_addr_fast, METH_O, name_addr_fast_doc},
    {"key_index", (PyCFunction)(void (*)(void))key_index, METH_FASTCALL, key_index_doc},
    {"key_count", (PyCFunction)(void (*)(void))key_count, METH_FASTCALL, key_count_doc},
    {"key_repeats", key_repeats, METH_O, key_repeats_doc},
    {"first_missing", (PyCFunction)(void (*)(void))first_missing, METH_FASTCALL, first_missing_doc},
    {"crc16_x25", crc16_x25, METH_O, crc16_x25_doc},
    {"totag_sums", (PyCFunction)(void (*)(void))totag_sums, METH_FASTCALL, totag_sums_doc},
    {"check_signals", check_signals, METH_NOARGS, check_signals_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "siprouter.sip._speedups",
    "C versions of the SIP parser's fast paths (see headers.py); optional.", -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    for (size_t k = 0; k < KNOWN_NAMES; k++) {
        known_lengths[k] = (Py_ssize_t)strlen(known_names[k][0]);
        if ((known_keys[k] = PyUnicode_InternFromString(known_names[k][1])) == NULL)
            return NULL;
    }
    for (size_t k = 0; k < KNOWN_METHODS; k++)
        if ((method_objects[k] = PyUnicode_InternFromString(known_methods[k])) == NULL)
            return NULL;
    return PyModule_Create(&module);
}
