# A valid ISF of about N bytes for host/bench/libs/run.sh: the recorded 6.12 layout (renamed to
# another producer) plus filler structs of 40 pointer members, the shape of a whole kernel's ISF.
#   python3 host/bench/libs/isf.py BYTES OUT
import json,sys
target=int(sys.argv[1]); out=sys.argv[2]
d=json.load(open(__import__('os').path.join(__import__('os').path.dirname(__file__), '../../../Tests/KscopeLayoutTests/Recorded/6.12.117+deb12-cloud-amd64.json')))
d['metadata']['producer']={'name':'dwarf2json','version':'0.8.0'}
i=0
text=json.dumps(d,indent=1)
size=len(text)
while size<target:
    fields={}
    for j in range(40):
        fields['member_%d'%j]={'offset':j*8,'type':{'kind':'pointer','subtype':{'kind':'struct','name':'filler_%d'%((i+1))}}}
    t={'kind':'struct','size':320,'fields':fields}
    d['user_types']['filler_%d'%i]=t
    size+=len(json.dumps(t,indent=1))+30
    i+=1
open(out,'w').write(json.dumps(d,indent=1))
