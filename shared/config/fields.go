package config

import (
	"fmt"
	"reflect"
	"strconv"
	"time"
)

// Override copies into dst the fields of src whose flags are in set (as
// Set returns it), matching flag to field by TOML key, so a new option
// needs only its struct field and its flag. dst and src point to structs of
// the same type. The flags -config and -version have no key and are skipped.
func Override(dst, src any, set map[string]bool) error {
	dv, sv := reflect.ValueOf(dst).Elem(), reflect.ValueOf(src).Elem()
	byKey := make(map[string]int)
	for i := 0; i < dv.NumField(); i++ {
		byKey[dv.Type().Field(i).Tag.Get("toml")] = i
	}
	for name := range set {
		if name == "config" || name == "version" {
			continue
		}
		i, ok := byKey[FlagToKey(name)]
		if !ok {
			return fmt.Errorf("flag -%s has no configuration key", name)
		}
		dv.Field(i).Set(sv.Field(i))
	}
	return nil
}

// memcachedNames are the settings memcached also has, under its names.
var memcachedNames = map[string]string{"max_conns": "maxconns", "max_item_size": "item_size_max"}

// Settings calls add once per field of opts (a struct), in field order, for
// "stats settings": under its TOML key, or memcached's name where memcached
// has the setting (maxconns, item_size_max); an empty string as NULL
// (memcached's word for an unset domain_socket); idle_timeout in whole
// seconds as memcached shows it; anything else as fmt.Sprint formats it.
func Settings(opts any, add func(key, value string)) {
	v := reflect.ValueOf(opts)
	for i := 0; i < v.NumField(); i++ {
		key := v.Type().Field(i).Tag.Get("toml")
		if r, ok := memcachedNames[key]; ok {
			key = r
		}
		f := v.Field(i)
		var val string
		switch {
		case f.Kind() == reflect.String:
			val = f.String()
			if val == "" {
				val = "NULL"
			}
		case key == "idle_timeout" && f.CanConvert(durationType):
			d := f.Convert(durationType).Interface().(time.Duration)
			val = strconv.FormatInt(int64(d/time.Second), 10)
		default:
			val = fmt.Sprint(f.Interface())
		}
		add(key, val)
	}
}

var durationType = reflect.TypeOf(time.Duration(0))

// Reload compares *cur with next (structs of the same type) field by field
// and, for each field that differs, calls apply with its TOML key. Where
// apply returns true (the change took effect while running) next's value
// is copied into *cur and "key=value" listed in applied; otherwise *cur
// keeps its value and "key=value" is listed in restart.
func Reload(cur, next any, apply func(key string) bool) (applied, restart []string) {
	cv, nv := reflect.ValueOf(cur).Elem(), reflect.ValueOf(next)
	applied, restart = []string{}, []string{}
	for i := 0; i < cv.NumField(); i++ {
		if cv.Field(i).Equal(nv.Field(i)) {
			continue
		}
		key := cv.Type().Field(i).Tag.Get("toml")
		change := fmt.Sprintf("%s=%v", key, nv.Field(i))
		if apply(key) {
			cv.Field(i).Set(nv.Field(i))
			applied = append(applied, change)
		} else {
			restart = append(restart, change)
		}
	}
	return applied, restart
}

// field returns the field of struct s (a value) whose TOML key is key, as a
// T. The daemons' reload path knows its keys' types, so a mismatch or a
// missing key is a programming error and panics.
func field[T any](s any, key string) T {
	v := reflect.ValueOf(s)
	for i := 0; i < v.NumField(); i++ {
		if v.Type().Field(i).Tag.Get("toml") == key {
			return v.Field(i).Interface().(T)
		}
	}
	panic("config: no field with key " + key)
}
