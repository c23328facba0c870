// Script frames of Php (interpose/script.h): not yet read.
#include "interpose/script.h"

namespace leakwatch {

bool InitPhpReader(ScriptReader*, std::string* why_not) {
  why_not->clear();
  return false;
}

}  // namespace leakwatch
