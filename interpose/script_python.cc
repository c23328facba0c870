// Script frames of Python (interpose/script.h): not yet read.
#include "interpose/script.h"

namespace leakwatch {

bool InitPythonReader(ScriptReader*, std::string* why_not) {
  why_not->clear();
  return false;
}

}  // namespace leakwatch
