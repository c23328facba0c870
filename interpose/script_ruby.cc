// Script frames of Ruby (interpose/script.h): not yet read.
#include "interpose/script.h"

namespace leakwatch {

bool InitRubyReader(ScriptReader*, std::string* why_not) {
  why_not->clear();
  return false;
}

}  // namespace leakwatch
