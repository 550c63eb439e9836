package stacks

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// cfnEnv resolves what CloudFormation resolves at deployment: pseudo
// parameters, template parameters and conditions, references to resources,
// exports. evalCFN and render use it.
type cfnEnv struct {
	partition, region, account string // "": aws, us-east-1, 111122223333
	params                     map[string]string
	conds                      map[string]bool
	ref                        func(id string) (string, bool)
	getAtt                     func(id, attr string) (string, bool)
	importValue                func(name string) (string, bool)
}

type noValue struct{}

var subRE = regexp.MustCompile(`\$\{[^}]+\}`)

func (e cfnEnv) pseudo(name string) (any, bool) {
	p := e.partition
	if p == "" {
		p = "aws"
	}
	switch name {
	case "AWS::Partition":
		return p, true
	case "AWS::Region":
		if e.region != "" {
			return e.region, true
		}
		return map[string]string{"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}[p], true
	case "AWS::AccountId":
		if e.account != "" {
			return e.account, true
		}
		return "111122223333", true
	case "AWS::URLSuffix":
		if p == "aws-cn" {
			return "amazonaws.com.cn", true
		}
		return "amazonaws.com", true
	case "AWS::StackId":
		r, _ := e.pseudo("AWS::Region")
		a, _ := e.pseudo("AWS::AccountId")
		return "arn:" + p + ":cloudformation:" + r.(string) + ":" + a.(string) + ":stack/trailfill/0e3f6a10-0000-4000-8000-000000000000", true
	case "AWS::NoValue":
		return noValue{}, true
	}
	return nil, false
}

// eval resolves the intrinsic functions in v.
func (e cfnEnv) eval(t *testing.T, v any) any {
	t.Helper()
	ev := func(x any) any { return e.eval(t, x) }
	str := func(x any) string {
		s, ok := ev(x).(string)
		if !ok {
			t.Fatalf("not a string: %s", asJSON(x))
		}
		return s
	}
	switch x := v.(type) {
	case []any:
		out := []any{}
		for _, el := range x {
			if r := ev(el); r != (noValue{}) {
				out = append(out, r)
			}
		}
		return out
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				args, _ := arg.([]any)
				switch k {
				case "Ref":
					name := arg.(string)
					if p, ok := e.pseudo(name); ok {
						return p
					}
					if p, ok := e.params[name]; ok {
						return p
					}
					if e.ref != nil {
						if r, ok := e.ref(name); ok {
							return r
						}
					}
					t.Fatalf("Ref to unknown %v", arg)
				case "Fn::GetAtt":
					if e.getAtt != nil {
						if r, ok := e.getAtt(args[0].(string), args[1].(string)); ok {
							return r
						}
					}
					t.Fatalf("cannot resolve %s", asJSON(x))
				case "Fn::ImportValue":
					if e.importValue != nil {
						if r, ok := e.importValue(str(arg)); ok {
							return r
						}
					}
					t.Fatalf("cannot resolve %s", asJSON(x))
				case "Fn::Sub":
					text, vars := "", map[string]any{}
					if list, ok := arg.([]any); ok {
						text, vars = list[0].(string), list[1].(map[string]any)
					} else {
						text = arg.(string)
					}
					return subRE.ReplaceAllStringFunc(text, func(m string) string {
						name := m[2 : len(m)-1]
						if v, ok := vars[name]; ok {
							return str(v)
						}
						return str(map[string]any{"Ref": name})
					})
				case "Fn::If":
					c, ok := e.conds[args[0].(string)]
					if !ok {
						t.Fatalf("unknown condition %v", args[0])
					}
					if c {
						return ev(args[1])
					}
					return ev(args[2])
				case "Fn::Not":
					return !ev(args[0]).(bool)
				case "Fn::Equals":
					return ev(args[0]) == ev(args[1])
				case "Fn::Join":
					var parts []string
					for _, p := range ev(args[1]).([]any) {
						parts = append(parts, p.(string))
					}
					return strings.Join(parts, args[0].(string))
				case "Fn::Split":
					var out []any
					for _, p := range strings.Split(str(args[1]), args[0].(string)) {
						out = append(out, p)
					}
					return out
				case "Fn::Select":
					list := ev(args[1]).([]any)
					i := int(args[0].(float64))
					if i >= len(list) {
						t.Fatalf("Fn::Select %d of %v", i, list)
					}
					return list[i]
				}
				if strings.HasPrefix(k, "Fn::") {
					t.Fatalf("unsupported %s", k)
				}
			}
		}
		out := map[string]any{}
		for k, el := range x {
			if r := ev(el); r != (noValue{}) {
				out[k] = r
			}
		}
		return out
	}
	return v
}

// withConditions evaluates the template's conditions into e.
func (e cfnEnv) withConditions(t *testing.T, tp tmpl) cfnEnv {
	t.Helper()
	e.conds = map[string]bool{}
	cs, _ := tp["Conditions"].(map[string]any)
	for name, c := range cs {
		e.conds[name] = e.eval(t, c).(bool)
	}
	return e
}

// evalCFN resolves the intrinsic functions the read-role template uses.
func evalCFN(t *testing.T, v any, params map[string]string, conds map[string]bool) any {
	t.Helper()
	return cfnEnv{params: params, conds: conds}.eval(t, v)
}

// render resolves a value made of Fn::Join, pseudo parameters and GetAtt
// (replaced by getAtt) to a string.
func render(t *testing.T, x any, getAtt string) string {
	t.Helper()
	e := cfnEnv{getAtt: func(string, string) (string, bool) { return getAtt, true }}
	s, ok := e.eval(t, x).(string)
	if !ok {
		t.Fatalf("cannot render %s", asJSON(x))
	}
	return s
}

// appEnv resolves references within the templates of one synthesized app,
// each resource standing for a made-up but well-formed name or ARN in the
// given partition: a bucket is named after its logical ID in lower case, a
// role arn:<partition>:iam::111122223333:role/<logical ID>, and so on.
// Imports resolve to the exporting stack's output value.
func appEnv(t *testing.T, s synthesized, stack, partition string) cfnEnv {
	t.Helper()
	e := cfnEnv{partition: partition}
	p, _ := e.pseudo("AWS::Partition")
	r, _ := e.pseudo("AWS::Region")
	a, _ := e.pseudo("AWS::AccountId")
	arn := func(service, region, account, resource string) string {
		return fmt.Sprintf("arn:%s:%s:%s:%s:%s", p, service, region, account, resource)
	}
	typeOf := func(id string) string {
		rs, _ := s.templates[stack]["Resources"].(map[string]any)
		if res, ok := rs[id].(map[string]any); ok {
			return res["Type"].(string)
		}
		return ""
	}
	e.ref = func(id string) (string, bool) {
		switch typeOf(id) {
		case "":
			return "", false
		case "AWS::S3::Bucket":
			return strings.ToLower(id), true
		case "AWS::SNS::Topic":
			return arn("sns", r.(string), a.(string), id), true
		case "AWS::StepFunctions::StateMachine":
			return arn("states", r.(string), a.(string), "stateMachine:"+id), true
		}
		return id, true
	}
	e.getAtt = func(id, attr string) (string, bool) {
		typ := typeOf(id)
		switch {
		case typ == "":
			return "", false
		case attr != "Arn":
			return id + "." + attr, true
		case typ == "AWS::S3::Bucket":
			return arn("s3", "", "", strings.ToLower(id)), true
		case typ == "AWS::IAM::Role":
			return arn("iam", "", a.(string), "role/"+id), true
		case typ == "AWS::Lambda::Function":
			return arn("lambda", r.(string), a.(string), "function:"+id), true
		case typ == "AWS::CloudWatch::Alarm":
			return arn("cloudwatch", r.(string), a.(string), "alarm:"+id), true
		case typ == "AWS::Logs::LogGroup":
			return arn("logs", r.(string), a.(string), "log-group:"+id+":*"), true
		}
		return arn("unknown", r.(string), a.(string), id), true
	}
	e.importValue = func(name string) (string, bool) {
		for other, tp := range s.templates {
			outs, _ := tp["Outputs"].(map[string]any)
			for _, o := range outs {
				om := o.(map[string]any)
				if exp, ok := om["Export"].(map[string]any); ok && exp["Name"] == name {
					v, ok := appEnv(t, s, other, partition).withConditions(t, tp).eval(t, om["Value"]).(string)
					return v, ok
				}
			}
		}
		return "", false
	}
	return e.withConditions(t, s.templates[stack])
}

// printedStatements returns the policy statements a stack prints in its
// outputs for the owners of an existing bucket or key, resolved.
func printedStatements(t *testing.T, s synthesized, stack, partition string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	outs, _ := s.templates[stack]["Outputs"].(map[string]any)
	for k, o := range outs {
		if !strings.HasSuffix(k, "PolicyStatement") {
			continue
		}
		text, ok := appEnv(t, s, stack, partition).eval(t, o.(map[string]any)["Value"]).(string)
		if !ok {
			t.Fatalf("output %s is not a string", k)
		}
		var v any
		if err := json.Unmarshal([]byte(text), &v); err != nil {
			t.Fatalf("output %s is not JSON: %v: %s", k, err, text)
		}
		switch x := v.(type) {
		case []any:
			for _, e := range x {
				out[k] = append(out[k], e.(map[string]any))
			}
		case map[string]any:
			out[k] = append(out[k], x)
		}
	}
	return out
}
