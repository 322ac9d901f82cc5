# Given as -DCMAKE_PROJECT_INCLUDE by `make build` (scripts/build.sh).
#
# The ROS 2 PyPI wheels export `<pkg>__rosidl_generator_py` targets whose
# INTERFACE_INCLUDE_DIRECTORIES name the wheel builder's interpreter
# (/opt/python/cp311-cp311/...). Those paths do not exist here, and CMake refuses
# imported targets with missing include dirs. At the end of configure we rewrite,
# for every such imported target, each include dir that does not exist to this
# interpreter's include dir and numpy's. On a real ROS 2 install every path exists
# and nothing is changed. Files in the venv are never edited.

function(_v2x_fix_wheel_include_dirs)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  set(_all_targets)
  # Imported targets are directory-scoped: collect them from every directory.
  get_property(_subdirs DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY SUBDIRECTORIES)
  list(APPEND _all_targets ${_targets})
  foreach(_dir IN LISTS _subdirs)
    get_property(_sub DIRECTORY "${_dir}" PROPERTY IMPORTED_TARGETS)
    list(APPEND _all_targets ${_sub})
  endforeach()
  foreach(_t IN LISTS _all_targets)
    if(NOT _t MATCHES "__rosidl_generator_py$")
      continue()
    endif()
    get_target_property(_dirs ${_t} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_fixed)
    set(_changed FALSE)
    foreach(_d IN LISTS _dirs)
      if(EXISTS "${_d}" OR _d MATCHES "^\\$<")
        list(APPEND _fixed "${_d}")
      else()
        set(_changed TRUE)
      endif()
    endforeach()
    if(_changed)
      list(APPEND _fixed "${Python3_INCLUDE_DIRS}" "${Python3_NumPy_INCLUDE_DIRS}")
      list(REMOVE_DUPLICATES _fixed)
      set_target_properties(${_t} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
      message(STATUS "v2x: corrected include dirs of wheel target ${_t}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _v2x_fix_wheel_include_dirs)
