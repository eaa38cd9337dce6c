/* tg_banned.h: functions we never call; included last by every .c (after system headers). */
#ifndef TG_BANNED_H
#define TG_BANNED_H
#pragma GCC poison sprintf strcpy strcat strncpy strtok atoi vsprintf gets
#endif
