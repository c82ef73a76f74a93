#ifndef HOOKD_VERSION_H
#define HOOKD_VERSION_H
#define HOOKD_VERSION "0.1.0"
#endif
