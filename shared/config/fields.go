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
	dv, sv := fieldMap(reflect.ValueOf(dst).Elem()), fieldMap(reflect.ValueOf(src).Elem())
	for name := range set {
		if name == "config" || name == "version" {
			continue
		}
		key := FlagToKey(name)
		d, ok := dv[key]
		if !ok {
			return fmt.Errorf("flag -%s has no configuration key", name)
		}
		d.Set(sv[key])
	}
	return nil
}

// leaves calls f for each field of the struct v with its TOML key, in
// order, descending into embedded structs (a Daemon in a daemon's
// configuration) so that their keys read as the outer struct's own.
func leaves(v reflect.Value, f func(key string, fv reflect.Value)) {
	t := v.Type()
	for i := 0; i < v.NumField(); i++ {
		if sf := t.Field(i); sf.Anonymous && sf.Type.Kind() == reflect.Struct {
			leaves(v.Field(i), f)
		} else {
			f(sf.Tag.Get("toml"), v.Field(i))
		}
	}
}

// fieldMap maps each TOML key of the struct v to its field.
func fieldMap(v reflect.Value) map[string]reflect.Value {
	m := make(map[string]reflect.Value)
	leaves(v, func(key string, fv reflect.Value) { m[key] = fv })
	return m
}

// memcachedNames are the settings memcached also has, under its names.
var memcachedNames = map[string]string{"max_conns": "maxconns", "max_item_size": "item_size_max"}

// Settings calls add once per field of opts (a struct), in field order, for
// "stats settings": under its TOML key, or memcached's name where memcached
// has the setting (maxconns, item_size_max); an empty string as NULL
// (memcached's word for an unset domain_socket); idle_timeout in whole
// seconds as memcached shows it; anything else as fmt.Sprint formats it.
func Settings(opts any, add func(key, value string)) {
	leaves(reflect.ValueOf(opts), func(key string, f reflect.Value) {
		if r, ok := memcachedNames[key]; ok {
			key = r
		}
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
	})
}

var durationType = reflect.TypeOf(time.Duration(0))

// Reload compares *cur with next (structs of the same type) field by field
// and, for each field that differs, calls apply with its TOML key. Where
// apply returns true (the change took effect while running) next's value
// is copied into *cur and "key=value" listed in applied; otherwise *cur
// keeps its value and "key=value" is listed in restart.
func Reload(cur, next any, apply func(key string) bool) (applied, restart []string) {
	type leaf struct {
		key string
		v   reflect.Value
	}
	var cs, ns []leaf
	leaves(reflect.ValueOf(cur).Elem(), func(key string, v reflect.Value) { cs = append(cs, leaf{key, v}) })
	leaves(reflect.ValueOf(next), func(key string, v reflect.Value) { ns = append(ns, leaf{key, v}) })
	applied, restart = []string{}, []string{}
	for i, c := range cs {
		n := ns[i].v
		if c.v.Equal(n) {
			continue
		}
		change := fmt.Sprintf("%s=%v", c.key, n)
		if apply(c.key) {
			c.v.Set(n)
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
	v, ok := fieldMap(reflect.ValueOf(s))[key]
	if !ok {
		panic("config: no field with key " + key)
	}
	return v.Interface().(T)
}

// Keys returns the TOML keys of the configuration struct v, in field
// order, those of embedded structs (a Daemon) included.
func Keys(v any) []string {
	var keys []string
	leaves(reflect.ValueOf(v), func(key string, _ reflect.Value) { keys = append(keys, key) })
	return keys
}
